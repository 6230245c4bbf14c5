//! `ls`, `stat`, `rm`.

use serde_json::{json, Value};
use shmbatch::inspect::{BroadcastInfo, HalfMade, Listed, Peer, SegmentInfo};
use shmbatch::{Kind, Role};

use crate::Result;

/// `1536` -> `"1.5 KiB"`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn alive(a: bool) -> &'static str {
    if a {
        "alive"
    } else {
        "dead"
    }
}

fn role(p: &Peer) -> String {
    p.role
        .map_or_else(|| "lock holder".to_owned(), |r| r.to_string())
}

/// A peer's role as its segment's kind names it: a broadcast log has a publisher
/// and subscribers.
fn role_in(i: &SegmentInfo, p: &Peer) -> String {
    match (i.kind, p.role) {
        (Kind::Broadcast, Some(Role::Sender)) => "publisher".to_owned(),
        (Kind::Broadcast, Some(Role::Receiver)) => "subscriber".to_owned(),
        _ => role(p),
    }
}

/// A broadcast log's policy: `lossy`, `lossless`, or `lossless, evict after 20ms`.
fn policy(b: &BroadcastInfo) -> String {
    match (b.lossy, b.evict_after) {
        (true, _) => "lossy".to_owned(),
        (false, None) => "lossless".to_owned(),
        (false, Some(d)) => format!("lossless, evict after {d:?}"),
    }
}

/// The kind for `ls`, with a broadcast log's policy.
fn kind(i: &SegmentInfo) -> String {
    match &i.broadcast {
        Some(b) => format!("{} ({})", i.kind, policy(b)),
        None => i.kind.to_string(),
    }
}

fn capacity(i: &SegmentInfo) -> String {
    match i.kind {
        Kind::Mpmc => format!("{} slots x {}", i.capacity, i.max_batch),
        _ => format!("{} elems", i.capacity),
    }
}

fn fill(i: &SegmentInfo) -> String {
    i.fill
        .map_or_else(|| "-".to_owned(), |f| format!("{:.0}%", f.ratio() * 100.0))
}

fn peers(i: &SegmentInfo) -> String {
    let mut s = format!("creator {} {}", i.creator.pid, alive(i.creator.alive));
    for p in &i.peers {
        s += &format!(
            ", {} {} {}",
            role_in(i, p),
            p.process.pid,
            alive(p.process.alive)
        );
    }
    s
}

/// The live processes that use a segment: its creator and attached peers.
fn live_users(i: &SegmentInfo) -> Vec<String> {
    let creator = i
        .creator
        .alive
        .then(|| format!("creator pid {}", i.creator.pid));
    creator
        .into_iter()
        .chain(
            i.peers
                .iter()
                .filter(|p| p.process.alive)
                .map(|p| format!("{} pid {}", role_in(i, p), p.process.pid)),
        )
        .collect()
}

fn half_made(h: &HalfMade) -> String {
    format!(
        "half-made segment for {:?}, creator {} {}{}",
        h.for_name,
        h.creator.pid,
        alive(h.creator.alive),
        if h.creator.alive { "" } else { " (stale)" }
    )
}

/// The element type for `ls`: its tag (or "untagged"), size and alignment.
fn elem_type(i: &SegmentInfo) -> String {
    let tag = if i.tag.is_empty() { "untagged" } else { &i.tag };
    format!("{tag} ({}/{})", i.elem_size, i.elem_align)
}

fn to_json(i: &SegmentInfo) -> Value {
    json!({
        "name": i.name,
        "layout_version": i.layout_version,
        "kind": i.kind.as_str(),
        "tag": i.tag,
        "elem_size": i.elem_size,
        "elem_align": i.elem_align,
        "capacity": i.capacity,
        "max_batch": i.max_batch,
        "stride": i.stride,
        "data_offset": i.data_offset,
        "data_len": i.data_len,
        "shape": i.shape,
        "wake_protocol": i.wake_protocol.map(|w| format!("{w:?}").to_lowercase()),
        "segment_len": i.segment_len,
        "file_len": i.file_len,
        "allocated": i.allocated,
        "creator": { "pid": i.creator.pid, "alive": i.creator.alive },
        "peers": i.peers.iter().map(|p| json!({
            "role": role_in(i, p), "pid": p.process.pid, "alive": p.process.alive,
        })).collect::<Vec<_>>(),
        "fill": i.fill.map(|f| json!({
            "used": f.used, "total": f.total, "unit": f.unit, "ratio": f.ratio(),
        })),
        "seq": i.seq,
        "broadcast": i.broadcast.as_ref().map(|b| json!({
            "policy": if b.lossy { "lossy" } else { "lossless" },
            "evict_after_ns": b.evict_after.map(|d| d.as_nanos() as u64),
            "published": b.published,
            "closed": b.closed,
            "subscribers": b.subscribers.iter().map(|s| json!({
                "entry": s.entry,
                "pid": s.process.pid,
                "alive": s.process.alive,
                "evicted": s.evicted,
                "behind": s.behind,
                "missed": s.missed,
            })).collect::<Vec<_>>(),
        })),
        "stale": i.is_stale(),
    })
}

pub(crate) fn ls(as_json: bool) -> Result {
    let all = shmbatch::list();
    if as_json {
        let v: Vec<Value> = all
            .iter()
            .map(|l| match (&l.half_made, &l.info) {
                (Some(h), _) => json!({
                    "name": l.name,
                    "half_made": {
                        "for": h.for_name,
                        "creator": { "pid": h.creator.pid, "alive": h.creator.alive },
                    },
                    "stale": l.is_stale(),
                }),
                (None, Ok(i)) => to_json(i),
                (None, Err(e)) => json!({ "name": l.name, "error": e.to_string() }),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if all.is_empty() {
        println!("no shmbatch segments in {}", shmbatch::inspect::SHM_DIR);
        return Ok(());
    }
    let rows: Vec<[String; 7]> = all
        .iter()
        .map(
            |Listed {
                 name,
                 info,
                 half_made: h,
             }| match (h, info) {
                (Some(h), _) => [
                    name.clone(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    info.as_ref()
                        .map_or_else(|_| "-".into(), |i| human_bytes(i.allocated)),
                    half_made(h),
                ],
                (None, Ok(i)) => [
                    name.clone(),
                    kind(i),
                    elem_type(i),
                    capacity(i),
                    fill(i),
                    human_bytes(i.allocated),
                    peers(i) + if i.is_stale() { " (stale)" } else { "" },
                ],
                (None, Err(e)) => [
                    name.clone(),
                    "?".into(),
                    "?".into(),
                    "?".into(),
                    "?".into(),
                    "?".into(),
                    format!("error: {e}"),
                ],
            },
        )
        .collect();
    let head = [
        "NAME",
        "KIND",
        "TYPE (SIZE/ALIGN)",
        "CAPACITY",
        "FILL",
        "SIZE",
        "PROCESSES",
    ];
    let mut w = [0usize; 7];
    for r in std::iter::once(&head.map(String::from)).chain(&rows) {
        for (k, c) in r.iter().enumerate() {
            w[k] = w[k].max(c.len());
        }
    }
    for r in std::iter::once(head.map(String::from)).chain(rows) {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(k, c)| {
                if k == 6 {
                    c.clone()
                } else {
                    format!("{c:<0$}", w[k])
                }
            })
            .collect();
        println!("{}", line.join("  "));
    }
    Ok(())
}

pub(crate) fn stat(name: &str, as_json: bool) -> Result {
    let i = shmbatch::inspect(name)?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&to_json(&i))?);
        return Ok(());
    }
    let unit = match i.kind {
        Kind::Mpmc => "slots",
        _ => "elements",
    };
    println!("name            {}", i.name);
    println!("kind            {}", i.kind);
    println!("layout version  {}", i.layout_version);
    println!(
        "element type    {}, size {}, align {}",
        if i.tag.is_empty() {
            "untagged".to_owned()
        } else {
            format!("tag {:?}", i.tag)
        },
        i.elem_size,
        i.elem_align
    );
    println!("capacity        {} {unit}", i.capacity);
    if i.kind != Kind::Array {
        println!("max batch       {} elements", i.max_batch);
    }
    if let Some(w) = i.wake_protocol {
        println!("wake protocol   {}", format!("{w:?}").to_lowercase());
    }
    if !i.shape.is_empty() {
        println!("shape           {:?}", i.shape);
    }
    if i.stride != 0 {
        println!("slot stride     {} bytes", i.stride);
    }
    println!("data offset     {}", i.data_offset);
    println!("data length     {} bytes", i.data_len);
    println!("segment length  {} bytes", i.segment_len);
    println!(
        "file            {} bytes, {} in memory",
        i.file_len,
        human_bytes(i.allocated)
    );
    println!(
        "creator         pid {} ({})",
        i.creator.pid,
        alive(i.creator.alive)
    );
    if i.peers.is_empty() {
        println!("attached        nobody");
    }
    for p in &i.peers {
        if i.broadcast.is_some() && p.role == Some(Role::Receiver) {
            continue; // each on a subscriber line below
        }
        println!(
            "attached        {} pid {} ({})",
            role_in(&i, p),
            p.process.pid,
            alive(p.process.alive)
        );
    }
    if let Some(b) = &i.broadcast {
        println!("policy          {}", policy(b));
        println!(
            "published       {} batches{}",
            b.published,
            if b.closed { " (publisher gone)" } else { "" }
        );
        println!("subscribers     {}", b.subscribers.len());
        for s in &b.subscribers {
            println!(
                "subscriber      entry {} pid {} ({}), behind {}, missed {}{}",
                s.entry,
                s.process.pid,
                alive(s.process.alive),
                s.behind,
                s.missed,
                if s.evicted { ", evicted" } else { "" }
            );
        }
    }
    if let Some(f) = i.fill {
        println!(
            "fill            {} of {} {} ({:.1}%){}",
            f.used,
            f.total,
            f.unit,
            f.ratio() * 100.0,
            if i.broadcast.is_some() {
                ", from the slowest subscriber to the publisher"
            } else {
                ""
            }
        );
    }
    if let Some(s) = i.seq {
        println!(
            "sequence        {s}{}",
            if s % 2 == 1 {
                " (write in progress)"
            } else {
                ""
            }
        );
    }
    println!(
        "stale           {}",
        if i.is_stale() { "yes" } else { "no" }
    );
    Ok(())
}

pub(crate) fn rm(names: &[String], stale: bool, force: bool) -> Result {
    if stale {
        let (mut n, mut failed) = (0, 0);
        for l in shmbatch::list() {
            match l.remove_if_stale() {
                Ok(true) => {
                    match (&l.half_made, &l.info) {
                        (Some(h), _) => println!("removed {} ({})", l.name, half_made(h)),
                        (None, Ok(i)) => {
                            println!("removed {} (creator {} dead)", l.name, i.creator.pid)
                        }
                        (None, Err(_)) => println!("removed {}", l.name),
                    }
                    n += 1;
                }
                Ok(false) => {
                    if let (None, Err(e)) = (&l.half_made, &l.info) {
                        eprintln!("kept {}: {e} (remove it by name with --force)", l.name);
                    }
                }
                Err(e) => {
                    eprintln!("shmbatch: {}: {e}", l.name);
                    failed += 1;
                }
            }
        }
        println!("{n} stale segment(s) removed");
        if failed > 0 {
            return Err(format!("{failed} stale segment(s) not removed").into());
        }
        return Ok(());
    }
    let mut failed = 0;
    for name in names {
        let res: Result = match shmbatch::inspect(name) {
            // Removing a segment in use strands its processes: the producer runs on
            // and no consumer can attach again.
            Ok(i) if !i.is_stale() && !force => Err(format!(
                "in use by {}; not removed (use --force)",
                live_users(&i).join(", ")
            )
            .into()),
            Ok(_) => shmbatch::remove(name).map_err(Into::into),
            Err(e @ shmbatch::Error::NotFound { .. }) => Err(e.into()),
            Err(_) if force => shmbatch::remove_any(name).map_err(Into::into),
            Err(e) => Err(format!("{e}; not removed (use --force)").into()),
        };
        match res {
            Ok(()) => println!("removed {name}"),
            Err(e) => {
                eprintln!("shmbatch: {name}: {e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        return Err(format!("{failed} segment(s) not removed").into());
    }
    Ok(())
}

pub(crate) fn create_persistent(kind: &str, name: &str) -> Result {
    match kind {
        "spsc" => {
            let mut tx = shmbatch::spsc::Sender::<f64>::create(name, 1024)?;
            tx.send(&[1.0, 2.0, 3.0])?;
            tx.persist();
        }
        "mpmc" => shmbatch::mpmc::Sender::<f64>::create(name, 8, 16)?.persist(),
        "array" => shmbatch::SharedArray::<f64>::create(name, 100)?.persist(),
        _ => return Err(format!("unknown kind {kind:?}").into()),
    }
    Ok(())
}

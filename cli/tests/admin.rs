//! `shmbatch ls`, `stat` and `rm` against real segments, and the plumbing of
//! `shmbatch bench` (feature `bench`, on by default). Names start with
//! `shmbatch-test-cli-` and every test removes what it made.

use std::process::{Command, Output};

fn shmbatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shmbatch"))
        .args(args)
        .output()
        .expect("run shmbatch")
}

/// The entry of `shmbatch ls --json` for segment (or temporary) `name`.
fn ls_json_entry(name: &str) -> serde_json::Value {
    let o = shmbatch(&["ls", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()
        .clone()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn unique(tag: &str) -> String {
    format!("shmbatch-test-cli-{}-{tag}", std::process::id())
}

fn exists(name: &str) -> bool {
    std::path::Path::new("/dev/shm").join(name).exists()
}

/// Removes the named segment when dropped, so a failing test leaves nothing behind.
struct Cleanup(String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(std::path::Path::new("/dev/shm").join(&self.0));
    }
}

#[test]
fn ls_shows_a_live_queue_and_its_peers() {
    let name = unique("ls");
    let mut tx = shmbatch::spsc::Sender::<f64>::create(&name, 4096).unwrap();
    let _rx = shmbatch::spsc::Receiver::<f64>::open(&name).unwrap();
    tx.send(&[1.0; 100]).unwrap();
    let o = shmbatch(&["ls"]);
    assert!(o.status.success());
    let out = stdout(&o);
    let line = out.lines().find(|l| l.starts_with(&name)).expect(&out);
    let pid = std::process::id();
    assert!(
        line.contains("spsc") && line.contains("<f8 (8/8)"),
        "{line}"
    );
    assert!(line.contains(&format!("sender {pid} alive")), "{line}");
    assert!(line.contains(&format!("receiver {pid} alive")), "{line}");
    assert!(!line.contains("stale"), "{line}");

    let me = ls_json_entry(&name);
    assert_eq!(me["fill"]["used"], 8 + 100 * 8, "{me}");
}

#[test]
fn ls_and_stat_show_an_mpmc_queue_fill_and_its_peers() {
    let name = unique("mpmc");
    let tx = shmbatch::mpmc::Sender::<f64>::create(&name, 64, 16).unwrap();
    let rx = shmbatch::mpmc::Receiver::<f64>::open(&name).unwrap();
    // A few laps round the 64 slots, then 3 batches waiting.
    let mut out = Vec::new();
    for k in 0..200 {
        tx.send(&[k as f64; 4]).unwrap();
        rx.recv_into(&mut out).unwrap();
    }
    for k in 0..3 {
        tx.send(&[k as f64; 4]).unwrap();
    }
    let o = shmbatch(&["ls"]);
    let out = stdout(&o);
    let line = out.lines().find(|l| l.starts_with(&name)).expect(&out);
    let pid = std::process::id();
    assert!(line.contains("mpmc"), "{line}");
    assert!(line.contains(&format!("sender {pid} alive")), "{line}");
    assert!(line.contains(&format!("receiver {pid} alive")), "{line}");

    let o = shmbatch(&["stat", &name, "--json"]);
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["fill"]["used"], 3, "{v}");
    assert_eq!(v["fill"]["total"], 64, "{v}");
    assert_eq!(v["fill"]["unit"], "slots", "{v}");
    assert_eq!(v["peers"].as_array().unwrap().len(), 2, "{v}");
}

#[test]
fn ls_and_stat_show_a_broadcast_log_its_policy_and_subscribers() {
    use shmbatch::broadcast::{Policy, Publisher, Subscriber, TryRecvError};
    use shmbatch::Options;
    use std::time::Duration;
    let pid = std::process::id();

    // Lossless with eviction: one subscriber that has received 1 of 3 batches.
    let name = unique("bcast");
    let opts = Options::new().evict_after(Duration::from_millis(20));
    let mut tx = Publisher::<f64>::create_with(&name, 64, &opts).unwrap();
    let mut rx = Subscriber::<f64>::open(&name).unwrap();
    for k in 0..3 {
        tx.send(&[k as f64; 4]).unwrap();
    }
    assert_eq!(rx.recv().unwrap().len(), 4);

    let out = stdout(&shmbatch(&["ls"]));
    let line = out.lines().find(|l| l.starts_with(&name)).expect(&out);
    assert!(
        line.contains("broadcast (lossless, evict after 20ms)"),
        "{line}"
    );
    assert!(line.contains(&format!("publisher {pid} alive")), "{line}");
    assert!(line.contains(&format!("subscriber {pid} alive")), "{line}");

    let o = shmbatch(&["stat", &name]);
    assert!(o.status.success(), "{o:?}");
    let out = stdout(&o);
    for want in [
        "kind            broadcast".to_owned(),
        "policy          lossless, evict after 20ms".to_owned(),
        "published       3 batches".to_owned(),
        "subscribers     1".to_owned(),
        format!("attached        publisher pid {pid} (alive)"),
        format!("subscriber      entry 0 pid {pid} (alive), behind 2, missed 0"),
        // Two records of 16 + 4 * 8 bytes not yet received by the subscriber.
        "fill            96 of ".to_owned(),
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(&want)),
            "{want:?} in\n{out}"
        );
    }
    assert!(!out.contains("attached        subscriber"), "{out}");

    let o = shmbatch(&["stat", &name, "--json"]);
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let b = &v["broadcast"];
    assert_eq!(b["policy"], "lossless", "{v}");
    assert_eq!(b["evict_after_ns"], 20_000_000, "{v}");
    assert_eq!(b["published"], 3, "{v}");
    assert_eq!(b["closed"], false, "{v}");
    let subs = b["subscribers"].as_array().unwrap();
    assert_eq!(subs.len(), 1, "{v}");
    assert_eq!(subs[0]["entry"], 0, "{v}");
    assert_eq!(subs[0]["pid"], pid, "{v}");
    assert_eq!(subs[0]["alive"], true, "{v}");
    assert_eq!(subs[0]["evicted"], false, "{v}");
    assert_eq!(subs[0]["behind"], 2, "{v}");
    assert_eq!(subs[0]["missed"], 0, "{v}");
    assert_eq!(v["fill"]["used"], 96, "{v}");
    assert_eq!(v["fill"]["unit"], "bytes", "{v}");
    assert_eq!(v["fill"]["total"], v["data_len"], "{v}");
    let roles: Vec<_> = v["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["role"])
        .collect();
    assert_eq!(roles, ["publisher", "subscriber"], "{v}");
    drop((rx, tx));

    // Lossy: a subscriber lapped, told what it missed.
    let name = unique("bcast-lossy");
    let opts = Options::new().broadcast_policy(Policy::Lossy);
    let mut tx = Publisher::<f64>::create_with(&name, 16, &opts).unwrap();
    let mut rx = Subscriber::<f64>::open(&name).unwrap();
    for k in 0..100 {
        tx.send(&[k as f64]).unwrap();
    }
    let Err(TryRecvError::Lagged { missed }) = rx.try_recv_into(&mut Vec::new()) else {
        panic!("not lapped")
    };
    let out = stdout(&shmbatch(&["ls"]));
    let line = out.lines().find(|l| l.starts_with(&name)).expect(&out);
    assert!(line.contains("broadcast (lossy)"), "{line}");
    let out = stdout(&shmbatch(&["stat", &name]));
    assert!(out.contains("policy          lossy\n"), "{out}");
    assert!(
        out.contains(&format!(
            "subscriber      entry 0 pid {pid} (alive), behind {}, missed {missed}",
            100 - missed
        )),
        "{out}"
    );
    let v: serde_json::Value =
        serde_json::from_slice(&shmbatch(&["stat", &name, "--json"]).stdout).unwrap();
    assert_eq!(v["broadcast"]["policy"], "lossy", "{v}");
    assert_eq!(
        v["broadcast"]["evict_after_ns"],
        serde_json::Value::Null,
        "{v}"
    );
    assert_eq!(v["broadcast"]["subscribers"][0]["missed"], missed, "{v}");
    assert_eq!(v["broadcast"]["published"], 100, "{v}");
    drop((rx, tx));
}

#[test]
fn stat_reports_the_data_offset_for_raw_attach() {
    let name = unique("stat");
    let a = shmbatch::SharedArray::<f64>::create(&name, 1000).unwrap();
    let o = shmbatch(&["stat", &name, "--json"]);
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["kind"], "array");
    assert_eq!(v["tag"], "<f8");
    assert_eq!(
        (v["elem_size"].as_u64(), v["elem_align"].as_u64()),
        (Some(8), Some(8))
    );
    assert_eq!(v["capacity"], 1000);
    assert_eq!(v["data_offset"], a.data_offset());
    assert_eq!(v["data_offset"], shmbatch::layout::ARRAY_DATA_OFFSET);
    assert_eq!(v["creator"]["pid"], std::process::id());
    assert_eq!(v["creator"]["alive"], true);
    assert_eq!(v["broadcast"], serde_json::Value::Null);

    let o = shmbatch(&["stat", &name]);
    assert!(stdout(&o).contains(&format!("data offset     {}", a.data_offset())));
}

#[test]
fn stat_of_a_missing_segment_fails_clearly() {
    let o = shmbatch(&["stat", &unique("missing")]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no shared segment named"));
}

#[test]
fn rm_removes_a_segment_by_name() {
    let name = unique("rm");
    let _c = Cleanup(name.clone());
    assert!(shmbatch(&["create-persistent", "mpmc", &name])
        .status
        .success());
    assert!(exists(&name));
    let o = shmbatch(&["rm", &name]);
    assert!(o.status.success(), "{o:?}");
    assert!(!exists(&name));
    assert!(!shmbatch(&["rm", &name]).status.success());
}

/// Held by the tests that run `rm --stale`, which removes every stale segment:
/// the other's too, before that one has looked at it.
static STALE_SWEEP: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn rm_stale_removes_dead_segments_and_keeps_live_ones() {
    let _sweep = STALE_SWEEP.lock().unwrap_or_else(|e| e.into_inner());
    let dead = unique("stale-dead");
    let live = unique("stale-live");
    let _c = Cleanup(dead.clone());
    assert!(shmbatch(&["create-persistent", "spsc", &dead])
        .status
        .success());
    let _tx = shmbatch::spsc::Sender::<f64>::create(&live, 64).unwrap();
    let o = shmbatch(&["ls"]);
    let out = stdout(&o);
    assert!(out
        .lines()
        .any(|l| l.starts_with(&dead) && l.ends_with("(stale)")));
    let o = shmbatch(&["rm", "--stale"]);
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains(&format!("removed {dead}")));
    assert!(!exists(&dead));
    assert!(exists(&live));
}

#[test]
fn rm_refuses_a_file_that_is_not_a_segment_unless_forced() {
    let name = unique("junk");
    let _c = Cleanup(name.clone());
    std::fs::write(std::path::Path::new("/dev/shm").join(&name), [7u8; 1000]).unwrap();
    let o = shmbatch(&["rm", &name]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    assert!(exists(&name));
    // Not listed: it does not start with the magic.
    assert!(!stdout(&shmbatch(&["ls"])).contains(&name));
    assert!(shmbatch(&["rm", "--force", &name]).status.success());
    assert!(!exists(&name));
}

#[test]
fn rm_refuses_a_segment_in_use_and_names_who_unless_forced() {
    let name = unique("in-use");
    let _c = Cleanup(name.clone());
    let tx = shmbatch::spsc::Sender::<f64>::create(&name, 64).unwrap();
    let _rx = shmbatch::spsc::Receiver::<f64>::open(&name).unwrap();
    let o = shmbatch(&["rm", &name]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let pid = std::process::id();
    for who in ["creator", "sender", "receiver"] {
        assert!(err.contains(&format!("{who} pid {pid}")), "{err}");
    }
    assert!(err.contains("--force"), "{err}");
    assert!(exists(&name));
    let o = shmbatch(&["rm", "--force", &name]);
    assert!(o.status.success(), "{o:?}");
    assert!(!exists(&name));
    drop(tx);
}

#[test]
fn ls_shows_and_rm_stale_removes_a_half_made_segment() {
    let _sweep = STALE_SWEEP.lock().unwrap_or_else(|e| e.into_inner());
    let for_name = unique("half");
    let dead = {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    };
    let temp = format!(".shmbatch-tmp-{dead}-0-0-{for_name}");
    let _c = Cleanup(temp.clone());
    std::fs::write(std::path::Path::new("/dev/shm").join(&temp), [0u8; 4096]).unwrap();
    let out = stdout(&shmbatch(&["ls"]));
    let line = out.lines().find(|l| l.starts_with(&temp)).expect(&out);
    assert!(
        line.contains(&format!(
            "half-made segment for \"{for_name}\", creator {dead} dead (stale)"
        )),
        "{line}"
    );
    let me = ls_json_entry(&temp);
    assert_eq!(me["half_made"]["for"], for_name.as_str(), "{me}");
    assert_eq!(me["stale"], true, "{me}");
    let o = shmbatch(&["rm", "--stale"]);
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains(&format!("removed {temp}")), "{o:?}");
    assert!(!exists(&temp));
}

#[cfg(feature = "bench")]
#[test]
fn bench_quick_writes_json_and_svg_and_leaves_nothing() {
    // Runs the shmbatch figures only (no peers): checks the plumbing, never timings.
    let dir = std::env::temp_dir();
    let json = dir.join(format!("shmbatch-test-cli-{}.json", std::process::id()));
    let svg = dir.join(format!("shmbatch-test-cli-{}.svg", std::process::id()));
    let before: Vec<_> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with("shmbatch-bench-"))
        .collect();
    let o = shmbatch(&[
        "bench",
        "--quick",
        "--runs",
        "2",
        "--no-peers",
        "--json",
        json.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{o:?}");
    let out = stdout(&o);
    assert!(
        out.contains("shmbatch spsc ping-pong") && out.contains("Targets"),
        "{out}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let tput = v["throughput"].as_array().unwrap();
    assert_eq!(v["settings"]["runs"], 2);
    for name in [
        "memcpy (limit)",
        "cross-core handoff (limit)",
        "shmbatch copy",
        "shmbatch zero-copy",
    ] {
        for batch in [1, 16, 256, 4096, 65536] {
            let t = tput
                .iter()
                .find(|t| t["name"] == name && t["batch"] == batch)
                .unwrap_or_else(|| panic!("{name} {batch}"));
            // The figure is the median of the two runs, which lie in the spread.
            let median = t["elements_per_s"].as_f64().unwrap();
            let spread = &t["spread_elements_per_s"];
            assert_eq!(spread["runs"].as_array().unwrap().len(), 2, "{t}");
            let (min, max) = (
                spread["min"].as_f64().unwrap(),
                spread["max"].as_f64().unwrap(),
            );
            assert!(0.0 < min && min <= median && median <= max, "{t}");
        }
    }
    let lat = v["latency"].as_array().unwrap();
    assert_eq!(lat.len(), 3);
    assert!(lat.iter().all(|l| l["runs"].as_array().unwrap().len() == 2));
    assert!(lat.iter().any(
        |l| l["name"] == "shmbatch broadcast+spsc ping-pong" && l["p50_ns"].as_u64() > Some(0)
    ));
    // The broadcast rows: shmbatch's own (no peers here), each a positive rate.
    let rates = v["rates"].as_array().unwrap();
    for subs in ["1 sub", "2 subs", "4 subs"] {
        let name = format!("shmbatch broadcast 256 f64, {subs} (per sub)");
        let r = rates
            .iter()
            .find(|r| r["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name}"));
        assert!(r["per_s"].as_f64().unwrap() > 0.0, "{r}");
        assert_eq!(
            r["spread_per_s"]["runs"].as_array().unwrap().len(),
            2,
            "{r}"
        );
    }
    assert!(
        out.contains("Broadcast, lossless, batches of 256 f64"),
        "{out}"
    );
    assert!(!rates
        .iter()
        .any(|r| r["name"].as_str().unwrap().starts_with("ringfire")));
    let target = v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == "min over sizes >= 256 of copy / cross-core handoff")
        .unwrap();
    // memcpy is context beside the handoff target, not a target of its own.
    assert!(target["vs_memcpy_1024"].as_f64().unwrap() > 0.0, "{target}");
    assert!(target["value"].as_f64().unwrap() > 0.0, "{target}");
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    let _ = std::fs::remove_file(&json);
    let _ = std::fs::remove_file(&svg);
    let leftovers: Vec<_> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with("shmbatch-bench-") && !before.contains(n))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[cfg(feature = "bench")]
#[test]
fn bench_ipc_channel_peer_moves_batches_between_processes() {
    // Plumbing only: the child connects, sends, and exits once we stop receiving.
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_shmbatch"));
    for batch in [1, 4096] {
        let r = shmbatch_bench_peers::ipc_channel(exe, batch, std::time::Duration::from_millis(30));
        assert!(r.unwrap() > 0.0);
    }
}

#[cfg(feature = "bench")]
#[test]
fn bench_broadcast_peers_reach_every_subscriber() {
    // Plumbing only: every subscriber process receives every batch, in order,
    // and says how many (a lost or reordered batch, or a wrong count, is an error).
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_shmbatch"));
    let d = std::time::Duration::from_millis(30);
    for subs in [1, 2] {
        let r = shmbatch_bench_peers::ringfire_broadcast(exe, subs, d);
        assert!(r.unwrap() > 0.0);
        let r = shmbatch_bench_peers::shaq_broadcast(exe, subs, d);
        assert!(r.unwrap() > 0.0);
        let r = shmbatch_bench_peers::iceoryx2_broadcast(exe, subs, d);
        if shmbatch_bench_peers::ICEORYX2_BUILT {
            assert!(r.unwrap() > 0.0);
        } else {
            let e = r.unwrap_err();
            assert!(e.contains("feature `iceoryx2`"), "{e}");
        }
    }
}

#[cfg(feature = "bench")]
#[test]
fn bench_iceoryx2_peer_runs_or_says_how_to_build_it() {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_shmbatch"));
    for batch in [1, 16, 256, 1024, 4096, 65536] {
        let r = shmbatch_bench_peers::iceoryx2(exe, batch, std::time::Duration::from_millis(30));
        if shmbatch_bench_peers::ICEORYX2_BUILT {
            assert!(r.unwrap() > 0.0);
        } else {
            let e = r.unwrap_err();
            assert!(e.contains("feature `iceoryx2`"), "{e}");
        }
    }
}

#[cfg(feature = "bench")]
#[test]
fn bench_peer_peers_report_python_or_skip_clearly() {
    // The Python peer returns a rate, or a reason that names what is missing.
    match shmbatch_bench_peers::python_mp_queue(16, std::time::Duration::from_millis(50)) {
        Ok(r) => assert!(r > 0.0),
        Err(e) => assert!(e.contains("python3") || e.contains("numpy"), "{e}"),
    }
}

#[cfg(not(feature = "bench"))]
#[test]
fn bench_in_a_slim_build_says_how_to_get_it() {
    let o = shmbatch(&["bench", "--quick", "--json", "never-written.json"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("feature `bench`"), "{err}");
    assert!(!std::path::Path::new("never-written.json").exists());
    let help = stdout(&shmbatch(&["--help"]));
    assert!(help.contains("ls") && !help.contains("bench"), "{help}");
}

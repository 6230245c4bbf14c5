//! Benchmark of the bridge on loopback: throughput and one-way latency of batches
//! of `f64` carried
//! - **bridge**: local SPSC queue → exporter → zenoh over TCP → importer → local
//!   SPSC queue, read by a consumer;
//! - **zenoh**: a zenoh publisher and subscriber carrying the same payload bytes
//!   over the same kind of TCP session, no queues;
//! - **tcp**: a plain `TcpStream` carrying the same bytes, length-prefixed.
//!
//! Every path runs between two zenoh sessions (or socket ends) in one process,
//! over a real TCP connection on 127.0.0.1, so one clock times both ends.
//! Latency is unloaded: the next batch leaves once the previous one arrived.
//!
//! ```text
//! cargo run --release -p shmbatch-zenoh --example bench -- [--quick] [--json FILE]
//! ```

use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmbatch::spsc;
use shmbatch_zenoh::zenoh::{self, Wait};
use shmbatch_zenoh::{Endpoints, ExportOptions, Exporter, ImportOptions, Importer};

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// zenoh's errors as ours.
fn z<T>(r: zenoh::Result<T>) -> Res<T> {
    r.map_err(|e| e.to_string().into())
}

/// What one path measured at one batch length.
#[derive(Debug, Clone)]
struct Row {
    path: &'static str,
    len: usize,
    batches_per_s: f64,
    gb_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    mean_us: f64,
}

fn port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Two zenoh sessions joined over TCP on loopback.
fn sessions() -> Res<(zenoh::Session, zenoh::Session)> {
    let ep = format!("tcp/127.0.0.1:{}", port());
    let a = Endpoints {
        listen: vec![ep.clone()],
        ..Endpoints::default()
    }
    .open()?;
    let b = Endpoints {
        connect: vec![ep],
        ..Endpoints::default()
    }
    .open()?;
    Ok((a, b))
}

/// Percentiles and mean of latency samples, in µs.
fn summary(mut ns: Vec<u64>) -> (f64, f64, f64) {
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() - 1) as f64 * q) as usize] as f64 / 1e3;
    let mean = ns.iter().sum::<u64>() as f64 / ns.len() as f64 / 1e3;
    (at(0.5), at(0.99), mean)
}

/// Nanoseconds since `base`, as the first element of a batch.
fn stamp(base: Instant) -> f64 {
    base.elapsed().as_nanos() as f64
}

/// The bridge: a producer thread into SPSC queue A, exporter, importer, SPSC
/// queue B, this thread consuming.
fn bridge(len: usize, batches: usize, pings: usize) -> Res<Row> {
    let (sa, sb) = sessions()?;
    let key = format!("bench/bridge/{}/{len}", std::process::id());
    let cap = (len * 64).max(1 << 16);
    let (mut tx_a, rx_a) = spsc::channel::<f64>(cap)?;
    let (tx_b, mut rx_b) = spsc::channel::<f64>(cap)?;
    let mut im = Importer::new(&sb, &key, tx_b, &ImportOptions::default())?;
    let mut ex = Exporter::new(&sa, &key, rx_a, &ExportOptions::default())?;
    let (stop_ex, stop_im) = (ex.stopper(), im.stopper());
    let ex_t = std::thread::spawn(move || ex.run().map(|_| ()).map_err(|e| e.to_string()));
    let im_t = std::thread::spawn(move || im.run().map(|_| ()).map_err(|e| e.to_string()));
    let base = Instant::now();
    let batch = vec![1.5f64; len];

    // Latency: one batch in flight at a time.
    let mut lat = Vec::with_capacity(pings);
    let mut out = Vec::new();
    for i in 0..pings + 100 {
        let mut b = batch.clone();
        b[0] = stamp(base);
        tx_a.send(&b)?;
        rx_b.recv_into(&mut out)?;
        if i >= 100 {
            lat.push(base.elapsed().as_nanos() as u64 - out[0] as u64);
        }
    }
    // Throughput: a producer thread sends, this thread receives.
    let t0 = Instant::now();
    let producer = std::thread::spawn(move || -> Result<(), String> {
        for _ in 0..batches {
            tx_a.send(&batch).map_err(|e| e.to_string())?;
        }
        Ok(())
    });
    for _ in 0..batches {
        rx_b.recv_into(&mut out)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    producer.join().unwrap()?;
    stop_ex.stop();
    stop_im.stop();
    ex_t.join().unwrap()?;
    im_t.join().unwrap()?;
    Ok(row("bridge", len, batches, secs, lat))
}

fn row(path: &'static str, len: usize, batches: usize, secs: f64, lat: Vec<u64>) -> Row {
    let (p50_us, p99_us, mean_us) = summary(lat);
    Row {
        path,
        len,
        batches_per_s: batches as f64 / secs,
        gb_per_s: (batches * len * 8) as f64 / secs / 1e9,
        p50_us,
        p99_us,
        mean_us,
    }
}

/// zenoh alone: the same bytes, publisher to subscriber.
fn zenoh_alone(len: usize, batches: usize, pings: usize) -> Res<Row> {
    let (sa, sb) = sessions()?;
    let key = format!("bench/zenoh/{}/{len}", std::process::id());
    let sub = z(sb
        .declare_subscriber(key.clone())
        .with(zenoh::handlers::FifoChannel::new(256))
        .wait())?;
    let publisher = z(sa
        .declare_publisher(key)
        .congestion_control(zenoh::qos::CongestionControl::Block)
        .wait())?;
    while !z(publisher.matching_status().wait())?.matching() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let base = Instant::now();
    // The bridge's payload: a 43-byte header and the batch.
    let bytes = 43 + len * 8;
    let mut lat = Vec::with_capacity(pings);
    for i in 0..pings + 100 {
        let mut v = vec![0u8; bytes];
        v[..8].copy_from_slice(&(base.elapsed().as_nanos() as u64).to_le_bytes());
        z(publisher.put(v).wait())?;
        let s = z(sub.recv())?;
        let got = s.payload().to_bytes();
        let sent = u64::from_le_bytes(got[..8].try_into()?);
        if i >= 100 {
            lat.push(base.elapsed().as_nanos() as u64 - sent);
        }
    }
    let t0 = Instant::now();
    let producer = std::thread::spawn(move || -> Result<(), String> {
        for _ in 0..batches {
            publisher
                .put(vec![0u8; bytes])
                .wait()
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    });
    let mut sink = 0usize;
    for _ in 0..batches {
        let s = z(sub.recv())?;
        // Touch the bytes, as the importer copies them.
        sink = sink.wrapping_add(s.payload().to_bytes().len());
    }
    let secs = t0.elapsed().as_secs_f64();
    producer.join().unwrap()?;
    assert_eq!(sink, batches * bytes);
    Ok(row("zenoh", len, batches, secs, lat))
}

/// A plain TCP connection: the same bytes, length-prefixed.
fn tcp(len: usize, batches: usize, pings: usize) -> Res<Row> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let client = TcpStream::connect(addr)?;
    let (server, _) = listener.accept()?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let bytes = 43 + len * 8;
    let base = Instant::now();
    let mut w = BufWriter::with_capacity(1 << 16, client);
    let mut r = BufReader::with_capacity(1 << 16, server);
    let mut buf = vec![0u8; bytes];
    fn read_frame(r: &mut BufReader<TcpStream>, buf: &mut Vec<u8>) -> std::io::Result<()> {
        let mut n = [0u8; 4];
        r.read_exact(&mut n)?;
        buf.resize(u32::from_le_bytes(n) as usize, 0);
        r.read_exact(buf)
    }
    // Latency: the reader is another thread, as zenoh's is; it hands back the
    // stamp it read, and the writer waits for it before the next frame.
    let seen = Arc::new(AtomicU64::new(u64::MAX));
    let total = pings + 100;
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(
            move || -> std::io::Result<(BufReader<TcpStream>, Vec<u8>)> {
                for _ in 0..total {
                    read_frame(&mut r, &mut buf)?;
                    let sent = u64::from_le_bytes(buf[..8].try_into().unwrap());
                    seen.store(base.elapsed().as_nanos() as u64 - sent, Ordering::Release);
                }
                Ok((r, buf))
            },
        )
    };
    let mut lat = Vec::with_capacity(pings);
    let mut frame = vec![0u8; bytes];
    for i in 0..total {
        frame[..8].copy_from_slice(&(base.elapsed().as_nanos() as u64).to_le_bytes());
        w.write_all(&(bytes as u32).to_le_bytes())?;
        w.write_all(&frame)?;
        w.flush()?;
        let took = loop {
            let v = seen.swap(u64::MAX, Ordering::AcqRel);
            if v != u64::MAX {
                break v;
            }
            std::thread::yield_now();
        };
        if i >= 100 {
            lat.push(took);
        }
    }
    let (mut r, mut buf) = reader.join().unwrap()?;
    let t0 = Instant::now();
    let producer = std::thread::spawn(move || -> std::io::Result<()> {
        for _ in 0..batches {
            w.write_all(&(bytes as u32).to_le_bytes())?;
            w.write_all(&frame)?;
        }
        w.flush()
    });
    for _ in 0..batches {
        read_frame(&mut r, &mut buf)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    producer.join().unwrap()?;
    Ok(row("tcp", len, batches, secs, lat))
}

fn main() -> Res {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let json = args
        .iter()
        .position(|a| a == "--json")
        .and_then(|i| args.get(i + 1).cloned());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    println!(
        "CPU: {cpu}, {} logical CPUs",
        std::thread::available_parallelism()?
    );
    let lens = [16usize, 256, 4096];
    let mut rows = Vec::new();
    for &len in &lens {
        // About 0.4 GB a path, fewer when quick.
        let batches = ((if quick { 50e6 } else { 400e6 }) / (len as f64 * 8.0)).min(400e3) as usize;
        let pings = if quick { 300 } else { 2000 };
        for path in ["bridge", "zenoh", "tcp"] {
            let r = match path {
                "bridge" => bridge(len, batches, pings)?,
                "zenoh" => zenoh_alone(len, batches, pings)?,
                _ => tcp(len, batches, pings)?,
            };
            println!(
                "{:>6} f64  {:<6}  {:>9.0} batches/s  {:>6.2} GB/s   latency p50 {:>7.1} µs  p99 {:>7.1} µs  mean {:>7.1} µs",
                r.len, r.path, r.batches_per_s, r.gb_per_s, r.p50_us, r.p99_us, r.mean_us
            );
            rows.push(r);
        }
        let get = |p: &str| {
            rows.iter()
                .rev()
                .find(|r| r.path == p && r.len == len)
                .unwrap()
        };
        let (b, z, t) = (get("bridge"), get("zenoh"), get("tcp"));
        println!(
            "{:>6} f64  bridge/zenoh throughput {:.2}, bridge/tcp {:.2}; p50 latency bridge/zenoh {:.2}, bridge/tcp {:.2}",
            len,
            b.gb_per_s / z.gb_per_s,
            b.gb_per_s / t.gb_per_s,
            b.p50_us / z.p50_us,
            b.p50_us / t.p50_us
        );
    }
    if let Some(path) = json {
        let mut s = format!("{{\"cpu\": {cpu:?}, \"rows\": [\n");
        for (i, r) in rows.iter().enumerate() {
            s += &format!(
                "  {{\"path\": \"{}\", \"len\": {}, \"batches_per_s\": {:.0}, \"gb_per_s\": {:.4}, \"p50_us\": {:.2}, \"p99_us\": {:.2}, \"mean_us\": {:.2}}}{}\n",
                r.path, r.len, r.batches_per_s, r.gb_per_s, r.p50_us, r.p99_us, r.mean_us,
                if i + 1 < rows.len() { "," } else { "" }
            );
        }
        s += "]}\n";
        std::fs::write(&path, s)?;
        println!("wrote {path}");
    }
    Ok(())
}

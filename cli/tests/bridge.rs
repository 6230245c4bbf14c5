//! `shmbatch bridge export` and `import` between two processes on 127.0.0.1 (CLI
//! feature `bridge`; CI runs these with `--features bridge`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shmbatch::spsc::{Receiver, Sender};

fn exe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shmbatch"))
}

fn port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rm(names: &[&str]) {
    for n in names {
        let _ = shmbatch::remove(n);
    }
}

/// A queue of 500 batches crosses: the importer creates the destination queue,
/// both sides print their counters as JSON, and every batch arrives bit for bit.
#[test]
fn export_and_import_carry_a_queue_and_report_counters() {
    let pid = std::process::id();
    let (src, dst) = (
        format!("shmbatch-test-cli-bridge-src-{pid}"),
        format!("shmbatch-test-cli-bridge-dst-{pid}"),
    );
    let state = format!("{dst}.bridge-import");
    let ep = format!("tcp/127.0.0.1:{}", port());
    let key = format!("shmbatch/test/cli/{pid}");
    let mut tx = Sender::<f64>::create(&src, 1 << 16).unwrap(); // holds all 500
    tx.persist();
    for i in 0..500u32 {
        let b: Vec<f64> = (0..=i % 97)
            .map(|j| f64::from(i) + f64::from(j) / 128.0)
            .collect();
        tx.send(&b).unwrap();
    }
    drop(tx); // the sender leaves: the exporter drains and ends the stream
    let import = exe()
        .args([
            "bridge",
            "import",
            &key,
            &dst,
            "--connect",
            &ep,
            "--until-end",
            "--json",
            "--quiet",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let export = exe()
        .args([
            "bridge", "export", &src, "--key", &key, "--listen", &ep, "--json", "--quiet",
        ])
        .output()
        .unwrap();
    let import = import.wait_with_output().unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let ex: serde_json::Value = serde_json::from_slice(&export.stdout).unwrap();
    let im: serde_json::Value = serde_json::from_slice(&import.stdout).unwrap();
    assert_eq!(
        (ex["batches"].as_u64(), im["batches"].as_u64()),
        (Some(500), Some(500))
    );
    assert_eq!(
        (
            im["lost"].as_u64(),
            im["duplicates"].as_u64(),
            im["ended"].as_bool()
        ),
        (Some(0), Some(0), Some(true))
    );
    let mut rx = Receiver::<f64>::open(&dst).unwrap();
    let mut out = Vec::new();
    for i in 0..500u32 {
        rx.recv_into_timeout(&mut out, Duration::from_secs(5))
            .unwrap();
        let want: Vec<f64> = (0..=i % 97)
            .map(|j| f64::from(i) + f64::from(j) / 128.0)
            .collect();
        assert_eq!(out, want);
    }
    drop(rx);
    rm(&[&src, &dst, &state]);
}

/// An importer into a queue of `f4` refuses a stream of `f8`, exits with an
/// error naming both types, and delivers nothing.
#[test]
fn import_refuses_a_stream_of_another_type() {
    let pid = std::process::id();
    let (src, dst) = (
        format!("shmbatch-test-cli-mismatch-src-{pid}"),
        format!("shmbatch-test-cli-mismatch-dst-{pid}"),
    );
    let state = format!("{dst}.bridge-import");
    let ep = format!("tcp/127.0.0.1:{}", port());
    let key = format!("shmbatch/test/cli-mismatch/{pid}");
    let mut tx = Sender::<f64>::create(&src, 1024).unwrap();
    tx.persist();
    tx.send(&[1.0, 2.0]).unwrap();
    let import = exe()
        .args([
            "bridge",
            "import",
            &key,
            &dst,
            "--dtype",
            "<f4",
            "--connect",
            &ep,
            "--quiet",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut export = exe()
        .args([
            "bridge", "export", &src, "--key", &key, "--listen", &ep, "--quiet",
        ])
        .spawn()
        .unwrap();
    let mut import = import;
    let until = Instant::now() + Duration::from_secs(30);
    while import.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = import.kill();
            panic!("the importer did not refuse the stream");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = import.wait_with_output().unwrap();
    let _ = export.kill();
    let _ = export.wait();
    drop(tx);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("\"<f8\"") && err.contains("\"<f4\"") && err.contains("refused"),
        "{err}"
    );
    let rx = Receiver::<f32>::open(&dst).unwrap();
    assert!(rx.is_empty(), "a batch of the wrong type was delivered");
    drop(rx);
    rm(&[&src, &dst, &state]);
}

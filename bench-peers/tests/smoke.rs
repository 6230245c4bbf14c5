//! Runs the cross-process peers briefly and prints their rates. Needs the built
//! `shmbatch` binary (its `bench-peer` subcommand is the other end):
//!
//! ```text
//! cargo build --release -p shmbatch-cli
//! SHMBATCH_EXE=target/release/shmbatch cargo test --release -p shmbatch-bench-peers \
//!     --test smoke -- --ignored --nocapture --test-threads 1
//! ```

use std::path::PathBuf;
use std::time::Duration;

const SIZES: [usize; 6] = [1, 16, 256, 1024, 4096, 65536];

fn exe() -> PathBuf {
    PathBuf::from(std::env::var_os("SHMBATCH_EXE").expect("SHMBATCH_EXE: the shmbatch binary"))
}

fn dur() -> Duration {
    let ms = std::env::var("SMOKE_MS").map_or(300, |v| v.parse().expect("SMOKE_MS"));
    Duration::from_millis(ms)
}

fn show(name: &str, n: usize, r: Result<f64, String>) {
    match r {
        Ok(v) => println!("{name:>12} {n:>6} {:>10.1} M elem/s", v / 1e6),
        Err(e) => println!("{name:>12} {n:>6} skipped: {e}"),
    }
}

#[test]
#[ignore = "needs SHMBATCH_EXE, takes seconds"]
fn peers() {
    let (exe, dur) = (exe(), dur());
    for n in SIZES {
        show("ringfire", n, shmbatch_bench_peers::ringfire(&exe, n, dur));
        show("shaq", n, shmbatch_bench_peers::shaq(&exe, n, dur));
        show(
            "rtrb_threads",
            n,
            Ok(shmbatch_bench_peers::rtrb_threads(n, dur)),
        );
    }
    // A size ringfire has no record type for is skipped, not an error.
    assert!(shmbatch_bench_peers::ringfire(&exe, 3, dur).is_err());
    show("shaq", 3, shmbatch_bench_peers::shaq(&exe, 3, dur));
}

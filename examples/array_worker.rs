//! The `numpy` + `SharedMemory` program, in Rust: create the array [1, 2, 3, 4, 5]
//! in a named segment, start a worker process that opens it by name and adds 10 to
//! every element in place, and print the array before and after.
//!
//! ```text
//! cargo run --example array_worker
//! ```
//! The worker is this same executable, started with `--worker NAME`. While the
//! array exists, Python can map it too:
//! `np.ndarray((5,), "<f8", buffer=SharedMemory(name=NAME).buf, offset=512)`.

use std::error::Error;
use std::process::Command;

use shmbatch::SharedArray;

fn worker(name: &str) -> Result<(), Box<dyn Error>> {
    let array = SharedArray::<f64>::open(name)?;
    let out = array.write(|xs| xs.iter_mut().for_each(|x| *x += 10.0));
    if let Some(r) = out.recovered {
        eprintln!(
            "worker: a previous writer (pid {}) died; partial: {}",
            r.pid, r.partial
        );
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, name] = args.as_slice() {
        if flag == "--worker" {
            return worker(name);
        }
    }

    let name = format!("array-worker-{}", std::process::id());
    // The creator removes the segment when `array` drops.
    let array = SharedArray::<f64>::create_from(&name, &[1.0, 2.0, 3.0, 4.0, 5.0])?;
    println!(
        "segment {name:?}: {} x {} at offset {}",
        array.len(),
        array.dtype().unwrap_or("?"),
        array.data_offset()
    );
    println!("before: {:?}", array.snapshot());

    let status = Command::new(std::env::current_exe()?)
        .args(["--worker", &name])
        .status()?;
    if !status.success() {
        return Err(format!("worker failed: {status}").into());
    }

    let after = array.snapshot();
    println!("after:  {after:?}");
    assert_eq!(after, [11.0, 12.0, 13.0, 14.0, 15.0]);
    Ok(())
}

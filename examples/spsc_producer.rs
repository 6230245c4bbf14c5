//! Producer half of a two-terminal demo. Start it first, then the consumer:
//!
//! ```text
//! terminal 1: cargo run --example spsc_producer            # creates "prices"
//! terminal 2: cargo run --example spsc_consumer            # opens "prices"
//! ```
//!
//! Sends 1000 batches of prices, one every millisecond, then drops the sender so the
//! consumer sees `Disconnected` after the last batch.

use std::time::Duration;

use shmbatch::spsc::Sender;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args().nth(1).unwrap_or_else(|| "prices".into());
    let mut tx = Sender::<f64>::create(&name, 1 << 16)?;
    println!("created segment {name:?}; waiting for a consumer to read...");
    for k in 0..1000u32 {
        let len = 1 + (k as usize * 37) % 64;
        let mut slot = tx.reserve(len)?; // write straight into the ring
        for (j, x) in slot.iter_mut().enumerate() {
            *x = 100.0 + f64::from(k) + j as f64 / 100.0;
        }
        slot.commit();
        std::thread::sleep(Duration::from_millis(1));
    }
    println!("sent 1000 batches");
    // Give a late consumer time to drain before the segment name disappears.
    while !tx.is_disconnected() {
        if tx.send_timeout(&[], Duration::from_secs(5)).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

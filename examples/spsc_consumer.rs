//! Consumer half of a two-terminal demo; see `spsc_producer.rs`.
//!
//! ```text
//! terminal 2: cargo run --example spsc_consumer            # opens "prices"
//! ```

use shmbatch::spsc::Receiver;
use shmbatch::RecvError;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args().nth(1).unwrap_or_else(|| "prices".into());
    let mut rx = Receiver::<f64>::open(&name)?;
    let (mut batches, mut values) = (0u64, 0u64);
    loop {
        match rx.recv() {
            Ok(batch) => {
                if batch.is_empty() {
                    continue; // keep-alive from the producer
                }
                batches += 1;
                values += batch.len() as u64;
                if batches % 100 == 0 {
                    println!(
                        "batch {batches}: {} prices, first {:.2}",
                        batch.len(),
                        batch[0]
                    );
                }
            }
            Err(RecvError::Disconnected) => break,
            Err(e) => return Err(e.into()),
        }
        if batches == 1000 {
            break;
        }
    }
    println!("received {batches} batches, {values} prices");
    Ok(())
}

use shmbatch::broadcast::{Publisher, Subscriber};
use std::time::{Duration, Instant};
fn main() {
    let name = "/probe-bcast";
    if std::env::args().nth(1).as_deref() == Some("sub") {
        let mut rx = Subscriber::<f64>::open_with(name, &shmbatch::Options::new()).unwrap();
        println!("ready");
        let mut v = Vec::new();
        let mut n = 0u64;
        while rx.recv_into(&mut v).is_ok() { n += 1; }
        eprintln!("sub got {n}");
        return;
    }
    let mut tx = Publisher::<f64>::create(name, 16384).unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap()).arg("sub").stdout(std::process::Stdio::piped()).spawn().unwrap();
    use std::io::BufRead;
    let mut l = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut l).unwrap();
    let src = vec![1.0f64; 256];
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed() < Duration::from_millis(1000) {
        for _ in 0..64 { tx.send(&src).unwrap(); n += 1; }
    }
    println!("{:.1} M elem/s", (n * 256) as f64 / t.elapsed().as_secs_f64() / 1e6);
    drop(tx);
    child.wait().unwrap();
}

//! Handles and guards cross threads where that is sound: a guard can be moved into
//! a worker thread or held by a foreign-language object that any thread may drop.
//! These fail to compile, not at run time, if a type loses Send or Sync.

fn send<T: Send>() {}
fn sync<T: Sync>() {}

#[test]
fn guards_are_send_and_sync() {
    send::<shmbatch::WriteGuard<'static, f64>>();
    sync::<shmbatch::WriteGuard<'static, f64>>();
    send::<shmbatch::spsc::Batch<'static, f64>>();
    sync::<shmbatch::spsc::Batch<'static, f64>>();
    send::<shmbatch::spsc::Reservation<'static, f64>>();
    sync::<shmbatch::spsc::Reservation<'static, f64>>();
    send::<shmbatch::mpmc::Batch<'static, f64>>();
    sync::<shmbatch::mpmc::Batch<'static, f64>>();
    send::<shmbatch::mpmc::Reservation<'static, f64>>();
    sync::<shmbatch::mpmc::Reservation<'static, f64>>();
}

#[test]
fn handles_are_send_and_the_shared_ones_sync() {
    send::<shmbatch::spsc::Sender<f64>>();
    send::<shmbatch::spsc::Receiver<f64>>();
    send::<shmbatch::mpmc::Sender<f64>>();
    sync::<shmbatch::mpmc::Sender<f64>>();
    send::<shmbatch::mpmc::Receiver<f64>>();
    sync::<shmbatch::mpmc::Receiver<f64>>();
    send::<shmbatch::SharedArray<f64>>();
    sync::<shmbatch::SharedArray<f64>>();
}

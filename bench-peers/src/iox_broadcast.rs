//! The iceoryx2 peer as a broadcast (feature `iceoryx2`): one publisher, several
//! subscriber processes.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use iceoryx2::prelude::{BackpressureStrategy, Node, ServiceName};
use iceoryx2::service::port_factory::publish_subscribe::PortFactory;

use super::broadcast::{self, Subscribers, BATCH};
use super::{iox::node, ring_elements, Backoff, Skipped};

type Service = iceoryx2::service::ipc::Service;

/// Samples each subscriber's buffer holds: as many batches as shmbatch's ring.
fn buffer() -> usize {
    ring_elements(BATCH) / BATCH
}

fn service(
    node: &Node<Service>,
    name: &str,
    subs: usize,
    create: bool,
) -> Result<PortFactory<Service, [f64], ()>, String> {
    let name: ServiceName = name.try_into().map_err(|e| format!("{e:?}"))?;
    let b = node
        .service_builder(&name)
        .publish_subscribe::<[f64]>()
        .enable_safe_overflow(false)
        .subscriber_max_buffer_size(buffer())
        .history_size(0)
        .max_publishers(1)
        .max_subscribers(subs);
    if create {
        b.create().map_err(|e| format!("create service: {e:?}"))
    } else {
        b.open().map_err(|e| format!("open service: {e:?}"))
    }
}

/// iceoryx2 0.10 publish-subscribe as a broadcast (see [`crate::broadcast`]):
/// this process creates the service (`subs` subscribers at most, no overflow)
/// and its publisher (`RetryUntilDelivered`: it waits for the fullest
/// subscriber buffer, so nothing is lost) and publishes each batch as a slice
/// (`loan_slice_uninit` + `write_from_slice`: one copy in); each of `subs`
/// child processes subscribes (a buffer of as many samples as shmbatch's ring
/// holds batches) before the first sample and copies every sample out, polling
/// `receive` with the `Backoff` (iceoryx2 has no blocking receive without a
/// listener). Elements per second per subscriber.
pub(super) fn publish(exe: &Path, subs: usize, dur: Duration) -> Result<f64, Skipped> {
    static N: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "shmbatch-bench/{}/bcast{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let node = node()?;
    let service = service(&node, &name, subs, true)?;
    let publisher = service
        .publisher_builder()
        .initial_max_slice_len(BATCH)
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()
        .map_err(|e| format!("publisher: {e:?}"))?;
    let mut s = Subscribers::new(None);
    s.spawn(exe, subs, &["iceoryx2-sub".into(), subs.to_string(), name])?;
    let mut src = vec![1.0f64; BATCH];
    broadcast::publish(&mut s, dur, |x, _: &mut Subscribers| {
        src[0] = x;
        let sample = publisher
            .loan_slice_uninit(BATCH)
            .map_err(|e| format!("loan: {e:?}"))?;
        let n = sample
            .write_from_slice(&src)
            .send()
            .map_err(|e| format!("send: {e:?}"))?;
        if n < subs {
            return Err(format!("a sample reached {n} of {subs} subscribers"));
        }
        Ok(())
    })
}

/// The child end, `iceoryx2-sub SUBS SERVICE`: subscribes, then reads until
/// the end mark.
pub(super) fn subscribe(subs: usize, name: &str) -> Result<(), String> {
    let node = node()?;
    let service = service(&node, name, subs, false)?;
    let sub = service
        .subscriber_builder()
        .buffer_size(buffer())
        .create()
        .map_err(|e| format!("subscriber: {e:?}"))?;
    let parent = std::os::unix::process::parent_id();
    let mut out = vec![0.0f64; BATCH];
    let mut misses = 0u32;
    broadcast::subscribe(|| {
        let mut b = Backoff::default();
        loop {
            match sub.receive() {
                Ok(Some(sample)) => {
                    out.copy_from_slice(sample.payload());
                    return Ok(out[0]);
                }
                Ok(None) => {
                    misses = misses.wrapping_add(1);
                    if misses.is_multiple_of(1 << 16)
                        && std::os::unix::process::parent_id() != parent
                    {
                        return Err("the publisher has gone".into());
                    }
                    b.snooze();
                }
                Err(e) => return Err(format!("receive: {e:?}")),
            }
        }
    })
}

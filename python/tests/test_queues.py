"""The queues from Python: verbs, zero copy, errors, GIL and Ctrl-C, pickling."""

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import shmbatch
import workers
from shmbatch import mpmc, spsc

KINDS = {"spsc": spsc, "mpmc": mpmc}


def pair(kind, name, capacity=1024, dtype="f8", **kw):
    m = KINDS[kind]
    rx = m.Receiver.create(name, capacity, dtype, **kw)
    return m.Sender.open(name), rx


@pytest.mark.parametrize("kind", KINDS)
def test_send_and_recv_copy(kind, name):
    tx, rx = pair(kind, name)
    tx.send(np.arange(5.0))
    tx.send([1.5, -0.0])  # any sequence is converted to the queue's dtype
    tx.send(np.arange(10.0)[::3])  # not contiguous: copied once, in order
    assert len(rx) == 3
    np.testing.assert_array_equal(rx.recv(), np.arange(5.0))
    b = rx.recv()
    assert b.dtype == np.float64 and np.signbit(b[1])
    np.testing.assert_array_equal(rx.recv(timeout=1), [0.0, 3.0, 6.0, 9.0])
    assert rx.try_recv() is None
    with pytest.raises(TimeoutError):
        rx.recv(timeout=0.02)
    tx.close()
    with pytest.raises(shmbatch.Disconnected):
        rx.recv()
    rx.close()


@pytest.mark.parametrize("kind", KINDS)
def test_iteration_ends_when_the_sender_goes(kind, name):
    tx, rx = pair(kind, name)
    for i in range(4):
        tx.send(np.full(i + 1, float(i)))
    tx.close()
    got = [b.tolist() for b in rx]
    assert got == [[0.0], [1.0, 1.0], [2.0] * 3, [3.0] * 4]
    rx.close()


@pytest.mark.parametrize("kind", KINDS)
def test_reserve_publishes_on_a_clean_exit_only(kind, name):
    tx, rx = pair(kind, name)
    with tx.reserve(3) as buf:
        assert buf.flags.writeable and len(buf) == 3
        buf[:] = [7.0, 8.0, 9.0]
    with pytest.raises(RuntimeError):
        with tx.reserve(2) as buf:
            buf[:] = 1.0
            raise RuntimeError("abandon")
    np.testing.assert_array_equal(rx.recv(), [7.0, 8.0, 9.0])
    assert rx.try_recv() is None
    assert not buf.flags.writeable
    tx.close()
    rx.close()


@pytest.mark.parametrize("kind", KINDS)
def test_recv_view_is_in_place_and_read_only_after(kind, name):
    tx, rx = pair(kind, name)
    tx.send(np.array([1.0, 2.0]))
    tx.send(np.array([3.0]))
    v = rx.recv_view()
    with v as batch:
        np.testing.assert_array_equal(batch, [1.0, 2.0])
        # One user at a time: the handle is lent to the view.
        with pytest.raises(shmbatch.Busy):
            rx.recv()
    assert not batch.flags.writeable
    np.testing.assert_array_equal(rx.recv(), [3.0])
    assert rx.try_recv_view() is None
    tx.close()
    with pytest.raises(shmbatch.Disconnected):
        rx.recv_view()
    rx.close()


@pytest.mark.parametrize("kind", KINDS)
def test_full_too_large_and_wrong_dtype(kind, name):
    tx, rx = pair(kind, name, capacity=8, max_batch=4)
    with pytest.raises(shmbatch.TooLarge):
        tx.send(np.zeros(5))
    with pytest.raises(shmbatch.TypeMismatch, match="float32"):
        tx.send(np.zeros(2, dtype=np.float32))
    with pytest.raises(ValueError, match="1-d"):
        tx.send(np.zeros((2, 2)))
    with pytest.raises(shmbatch.Full):
        for _ in range(100):
            tx.try_send(np.zeros(4))
    with pytest.raises(TimeoutError):
        tx.send(np.zeros(4), timeout=0.02)
    with pytest.raises(shmbatch.Full):
        tx.try_reserve(4)
    assert tx.is_full()
    tx.close()
    rx.close()


@pytest.mark.parametrize("kind", KINDS)
def test_dtype_from_the_segment_or_checked(kind, name):
    m = KINDS[kind]
    rx = m.Receiver.create(name, 64, "i4")
    tx = m.Sender.open(name)
    assert tx.dtype == np.int32
    with pytest.raises(shmbatch.TypeMismatch):
        m.Receiver.open(name, dtype="f8") if kind == "mpmc" else m.Sender.open(name, dtype="u4")
    tx.send(np.arange(3, dtype=np.int32))
    assert rx.recv().dtype == np.int32
    tx.close()
    rx.close()


def test_spsc_ends_are_exclusive(name):
    tx, rx = pair("spsc", name)
    with pytest.raises(shmbatch.AlreadyAttached):
        spsc.Sender.open(name)
    tx.close()
    rx.close()


def test_blocking_recv_releases_the_gil(name):
    tx, rx = pair("spsc", name)
    ticks = 0
    stop = False

    def count():
        nonlocal ticks
        while not stop:
            ticks += 1

    t = threading.Thread(target=count)
    t.start()
    with pytest.raises(TimeoutError):
        rx.recv(timeout=0.3)
    stop = True
    t.join()
    # The other thread ran while recv waited (with the GIL held it could not).
    assert ticks > 1000
    tx.close()
    rx.close()


def test_keyboard_interrupt_out_of_a_blocking_recv(name):
    tx = spsc.Sender.create(name, 64)
    child = subprocess.Popen(
        [sys.executable, "-c", f"import workers; workers.block_in_recv({name!r})"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.path.dirname(__file__),
    )
    assert child.stdout.readline().strip() == "blocking"
    time.sleep(0.2)  # inside recv, without the GIL
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    assert child.stdout.readline().strip() == "interrupted"
    took = time.monotonic() - sent
    assert child.wait(30) == 0
    print(f"KeyboardInterrupt after {took * 1000:.1f} ms")
    # Slices of 20 ms: well under a second even on a loaded 2-core machine.
    assert took < 1.0
    tx.close()


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_an_mpmc_sender_passed_to_processes_opens_by_name(name, method):
    rx = mpmc.Receiver.create(name, 16, max_batch=4)
    tx = mpmc.Sender.open(name)
    ctx = mp.get_context(method)
    ps = [ctx.Process(target=workers.mpmc_send_range, args=(tx, 1000 * k, 200)) for k in range(2)]
    for p in ps:
        p.start()
    got = []
    while len(got) < 400:
        got.append(rx.recv(timeout=60)[0])
    for p in ps:
        p.join(60)
        assert p.exitcode == 0
    assert sorted(got) == [float(i) for k in range(2) for i in range(1000 * k, 1000 * k + 200)]
    # The parent's own sender still works: the children attached their own.
    tx.send([5.0])
    assert rx.recv(timeout=10).tolist() == [5.0]
    tx.close()
    rx.close()


def test_close_and_context_managers(name):
    with spsc.Receiver.create(name, 64) as rx:
        with spsc.Sender.open(name) as tx:
            tx.send([1.0])
        assert tx.closed
        assert rx.recv().tolist() == [1.0]
    assert rx.closed
    with pytest.raises(ValueError, match="closed"):
        rx.recv()
    assert name not in os.listdir("/dev/shm")


@pytest.mark.parametrize("kind", KINDS)
def test_a_released_view_stays_readable_after_close(kind, name):
    tx, rx = pair(kind, name)
    tx.send(np.array([1.0, 2.0]))
    with rx.recv_view() as batch:
        pass
    rx.close()  # the creator: detaches and removes the name now
    assert name not in os.listdir("/dev/shm")
    with pytest.raises(shmbatch.Disconnected):
        tx.send([3.0])
    with pytest.raises(ValueError, match="closed"):
        rx.recv()
    assert len(batch) == 2 and not batch.flags.writeable
    assert batch.sum() == 3.0  # still mapped: stale, never dangling
    tx.close()

"""SharedArray from Python: shapes, dtypes, the lock, atomics, recovery, pickling."""

import multiprocessing as mp
import os
import pickle
import signal
import subprocess
import warnings

import numpy as np
import pytest

import shmbatch
import workers
from shmbatch import SharedArray

DTYPES = ["f8", "f4", "i8", "u8", "i4", "u4", "i2", "u2", "i1", "u1"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_create_open_and_read_every_dtype(name, dtype):
    values = (np.arange(24) % 100).astype(dtype).reshape(2, 3, 4)
    with SharedArray.create_from(name, values) as a:
        assert a.shape == (2, 3, 4) and a.size == 24 and len(a) == 2
        assert a.dtype == np.dtype(dtype) and a.name == name
        b = SharedArray.open(name)
        assert b.shape == (2, 3, 4) and b.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(b.snapshot(), values)
        assert b.snapshot().dtype == np.dtype(dtype)
        b.close()
    assert name not in os.listdir("/dev/shm")


def test_create_zeroed_with_an_int_or_tuple_shape(name):
    a = SharedArray.create(name, 5)
    assert a.shape == (5,) and a.dtype == np.float64
    np.testing.assert_array_equal(a.snapshot(), np.zeros(5))
    a.close()
    a = SharedArray.create(name, (2, 2), dtype="i4")
    assert a.snapshot().shape == (2, 2)
    a.close()


def test_write_publishes_on_a_clean_exit_and_nothing_on_an_exception(name):
    a = SharedArray.create_from(name, np.array([1.0, 2.0, 3.0]))
    w = a.write()
    with w as arr:
        arr += 10
        # Readers do not see the working copy before the block ends.
        np.testing.assert_array_equal(a.snapshot(), [1.0, 2.0, 3.0])
    assert w.recovered is None
    np.testing.assert_array_equal(a.snapshot(), [11.0, 12.0, 13.0])
    assert not arr.flags.writeable  # the working copy is stale now
    with pytest.raises(ZeroDivisionError):
        with a.write() as arr:
            arr[:] = 0
            1 / 0
    np.testing.assert_array_equal(a.snapshot(), [11.0, 12.0, 13.0])
    a.close()


def test_write_timeout_while_another_holds_the_lock(name):
    a = SharedArray.create(name, 3)
    with a.write():
        with pytest.raises(TimeoutError):
            with SharedArray.open(name).write(timeout=0.05):
                pass
    a.close()


def test_element_operations(name):
    a = SharedArray.create(name, (2, 2), dtype="i8")
    assert a.fetch_add(3, 5) == 0
    assert a.load(-1) == 5
    a.store(0, 7)
    assert a.swap(0, 8) == 7
    assert a.compare_exchange(0, 8, 9) == (True, 8)
    assert a.compare_exchange(0, 8, 10) == (False, 9)
    np.testing.assert_array_equal(a.snapshot(), [[9, 0], [0, 5]])
    with pytest.raises(IndexError):
        a.load(4)
    a.close()
    b = SharedArray.create(name, 4, dtype="u1")
    with pytest.raises(TypeError):
        b.fetch_add(0, 1)
    b.close()


def test_unsafe_view_is_the_shared_memory(name):
    a = SharedArray.create(name, (2, 3))
    v = a.unsafe_view()
    assert v.shape == (2, 3) and v.flags.writeable
    v[1, 2] = 4.5
    assert SharedArray.open(name).load(5) == 4.5
    del v
    a.close()


def test_errors_name_the_problem(name):
    with pytest.raises(FileNotFoundError):
        SharedArray.open(name)
    a = SharedArray.create(name, 4)
    with pytest.raises(FileExistsError):
        SharedArray.create(name, 4)
    with pytest.raises(shmbatch.TypeMismatch, match="<f4"):
        SharedArray.open(name, dtype="f4")
    assert SharedArray.open(name, dtype=np.float64).shape == (4,)
    with pytest.raises(ValueError):
        SharedArray.create("bad/name", 4)
    with pytest.raises(TypeError, match="not supported"):
        SharedArray.create(name + "c", 4, dtype="c16")
    a.close()


def test_kind_mismatch(name):
    tx = shmbatch.spsc.Sender.create(name, 64)
    with pytest.raises(shmbatch.KindMismatch):
        SharedArray.open(name)
    with pytest.raises(shmbatch.KindMismatch):
        SharedArray.open(name, dtype="f8")
    with pytest.raises(shmbatch.KindMismatch):
        shmbatch.mpmc.Receiver.open(name)
    tx.close()


def test_persist_keeps_the_segment(name):
    a = SharedArray.create(name, 2, persist=True)
    a.close()
    assert SharedArray.open(name).shape == (2,)
    shmbatch.remove(name)
    with pytest.raises(FileNotFoundError):
        SharedArray.open(name)


def test_collected_handle_removes_its_segment(name):
    SharedArray.create(name, 2)
    import gc

    gc.collect()
    assert name not in os.listdir("/dev/shm")


@pytest.mark.parametrize("how", ["lock", "atomic"])
def test_exact_counts_from_processes(name, how):
    procs, rounds = 4, 300
    a = SharedArray.create(name, 1000)
    ctx = mp.get_context("spawn")
    target = workers.add_under_lock if how == "lock" else workers.add_atomically
    ps = [ctx.Process(target=target, args=(name, rounds)) for _ in range(procs)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(120)
        assert p.exitcode == 0
    snap = a.snapshot()
    if how == "lock":
        assert (snap == procs * rounds).all()
    else:
        assert snap[0] == procs * rounds and snap[-1] == 2 * procs * rounds
        assert (snap[1:-1] == 0).all()
    a.close()


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_a_handle_passed_to_a_process_opens_by_name(name, method):
    a = SharedArray.create_from(name, np.array([1.0, 2, 3, 4, 5]))
    p = mp.get_context(method).Process(target=workers.add_ten, args=(a,))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    np.testing.assert_array_equal(a.snapshot(), [11.0, 12, 13, 14, 15])
    # The child's handle did not own the segment: it is still here.
    assert name in os.listdir("/dev/shm")
    a.close()


def test_pickle_round_trip(name):
    a = SharedArray.create(name, (3, 1), dtype="u4")
    b = pickle.loads(pickle.dumps(a))
    assert (b.name, b.shape, b.dtype) == (name, (3, 1), np.dtype("u4"))
    b.close()
    a.close()


def test_a_writer_killed_inside_write_is_recovered(name):
    a = SharedArray.create_from(name, np.array([1.0, 2.0, 3.0]))
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    p = ctx.Process(target=workers.die_inside_write, args=(name, ready))
    p.start()
    assert ready.wait(60)  # the child holds the lock now
    os.kill(p.pid, signal.SIGKILL)
    p.join(30)
    with pytest.warns(shmbatch.RecoveredWarning, match=str(p.pid)):
        wr = a.write(timeout=30)
        with wr as arr:
            # The dead writer published nothing: the array is as it was.
            np.testing.assert_array_equal(arr, [1.0, 2.0, 3.0])
            arr += 1
    assert wr.recovered.pid == p.pid and wr.recovered.partial is False
    np.testing.assert_array_equal(a.snapshot(), [2.0, 3.0, 4.0])
    # Told once: the next writer hears nothing.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with a.write():
            pass
    a.close()


def test_rust_and_python_readers_never_see_a_python_write_half_done(name, peer):
    a = SharedArray.create(name, 1 << 18)
    watcher = subprocess.Popen([peer, "watch", name, "1500"], stdout=subprocess.PIPE, text=True)
    ctx = mp.get_context("spawn")
    writer = ctx.Process(target=workers.write_all_equal, args=(name, 2.0))
    writer.start()
    torn = 0
    reads = 0
    while writer.is_alive():
        s = a.snapshot()
        reads += 1
        torn += int(not (s == s[0]).all())
    writer.join()
    out, _ = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, out
    assert "none torn" in out
    assert torn == 0 and reads > 0
    a.close()


def test_unsafe_view_outlives_close(name):
    import gc

    a = SharedArray.create_from(name, np.array([1.0, 2.0]))
    v = a.unsafe_view()
    a.close()
    assert name not in os.listdir("/dev/shm")  # closed now: the name is gone
    assert v.sum() == 3.0  # the view keeps the memory mapped
    del v
    gc.collect()


def test_open_waits_for_the_segment_with_a_timeout(name):
    import threading

    t = threading.Timer(0.2, lambda: made.append(SharedArray.create(name, (2, 2), dtype="u4")))
    made = []
    t.start()
    b = SharedArray.open(name, timeout=10)  # no dtype: read from the segment once it exists
    assert b.shape == (2, 2) and b.dtype == np.uint32
    t.join()
    b.close()
    made[0].close()
    with pytest.raises(ValueError, match="timeout"):
        SharedArray.open(name, timeout=-1)
    with pytest.raises(FileNotFoundError):
        SharedArray.open(name, timeout=0.05)

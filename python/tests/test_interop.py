"""Python and Rust on one queue, either side creating it: at least 1 M f64 in
random-length batches, checked value by value, copying and zero copy."""

import subprocess

import numpy as np
import pytest

from shmbatch import mpmc, spsc

KINDS = {"spsc": spsc, "mpmc": mpmc}
TOTAL = 1_000_000
MAX_LEN = 4096


def send_from_python(tx, zero_copy, seed=7):
    rng = np.random.default_rng(seed)
    nxt = 0
    while nxt < TOTAL:
        n = int(min(rng.integers(1, MAX_LEN + 1), TOTAL - nxt))
        if zero_copy:
            with tx.reserve(n) as buf:
                buf[:] = np.arange(nxt, nxt + n, dtype=np.float64)
        else:
            tx.send(np.arange(nxt, nxt + n, dtype=np.float64))
        nxt += n
    tx.close()


def recv_in_python(rx, zero_copy):
    nxt, batches = 0, 0
    while True:
        try:
            if zero_copy:
                with rx.recv_view(timeout=60) as b:
                    n = len(b)
                    ok = np.array_equal(b, np.arange(nxt, nxt + n, dtype=np.float64))
            else:
                b = rx.recv(timeout=60)
                n = len(b)
                ok = np.array_equal(b, np.arange(nxt, nxt + n, dtype=np.float64))
        except Exception as e:  # noqa: BLE001  (Disconnected ends the stream)
            if type(e).__name__ == "Disconnected":
                break
            raise
        assert ok, f"batch {batches} at value {nxt} does not hold the expected values"
        nxt += n
        batches += 1
    assert nxt == TOTAL
    return batches


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("zero_copy", [False, True], ids=["copy", "zero-copy"])
@pytest.mark.parametrize("creator", ["python", "rust"])
def test_python_to_rust(kind, zero_copy, creator, name, peer):
    m = KINDS[kind]
    if creator == "python":
        cap = 1 << 16 if kind == "spsc" else 64
        tx = m.Sender.create(name, cap, max_batch=MAX_LEN)
        rx_proc = subprocess.Popen([peer, "recv", kind, name, str(TOTAL)], stdout=subprocess.PIPE, text=True)
    else:
        args = [peer, "recv", kind, name, str(TOTAL), "create", str(1 << 16 if kind == "spsc" else 64), str(MAX_LEN)]
        rx_proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert rx_proc.stdout.readline().strip() == "ready"
        tx = m.Sender.open(name, timeout=10)
    send_from_python(tx, zero_copy)
    out, _ = rx_proc.communicate(timeout=120)
    assert rx_proc.returncode == 0, out
    assert f"received {TOTAL} values" in out


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("zero_copy", [False, True], ids=["copy", "zero-copy"])
@pytest.mark.parametrize("creator", ["python", "rust"])
def test_rust_to_python(kind, zero_copy, creator, name, peer):
    m = KINDS[kind]
    if creator == "python":
        cap = 1 << 16 if kind == "spsc" else 64
        rx = m.Receiver.create(name, cap, max_batch=MAX_LEN)
        tx_proc = subprocess.Popen([peer, "send", kind, name, str(TOTAL), str(MAX_LEN), "11"], stdout=subprocess.PIPE, text=True)
    else:
        cap = 1 << 16 if kind == "spsc" else 64
        tx_proc = subprocess.Popen(
            [peer, "send", kind, name, str(TOTAL), str(MAX_LEN), "11", "create", str(cap)], stdout=subprocess.PIPE, text=True
        )
        rx = m.Receiver.open(name, timeout=10)
    batches = recv_in_python(rx, zero_copy)
    out, _ = tx_proc.communicate(timeout=120)
    assert tx_proc.returncode == 0, out
    assert f"sent {TOTAL} values in {batches} batches" in out
    rx.close()

#!/usr/bin/env python3
"""shmbatch's Python benchmark: throughput and round trip between two processes,
against the usual ways Python moves numpy arrays between processes.

    python python/bench/bench.py [--quick] [--json out.json]

Every measurement runs between two real processes (multiprocessing, "spawn"):
a producer and a consumer (throughput) or a pinger and a ponger (round trip).
See python/bench/README.md for what is measured and how to read the output.
"""

import argparse
import ctypes
import glob
import json
import os
import platform
import statistics
import sys
import time
import traceback
import multiprocessing as mp

import numpy as np

SIZES = [1, 16, 256, 4096, 65536]
SENTINEL = -1.0  # the last batch of a run: first and last element -1
NAN = float("nan")


def ring_batches(n):
    """Batches a bounded queue of the bench holds: its room is the larger of 4
    batches and 16384 elements, 4 to 1024 batches (as the Rust CLI bench)."""
    return max(4, min(1024, max(4 * n, 16384) // n))


def spsc_capacity(n):
    """SPSC ring capacity in elements: room for ring_batches(n) batches, as the
    other bounded queues get, and at least 16384 elements. A record is the batch
    plus an 8-byte header, so the Rust benches' max(4n, 16384) holds only 3
    batches of 4096 or 65536 elements; k * (n + 1) holds k."""
    return max(16384, ring_batches(n) * (n + 1))


# --------------------------------------------------------------------------
# Transports. Each one has:
#   setup(ctx, n, name)   in the parent: a picklable spec for one channel
#   teardown(spec)        in the parent, after both children are gone
#   sender(spec, n)       in a child: (send(seq), close()), send writes the
#                         batch with first and last element = seq
#   receiver(spec, n)     in a child: (recv() -> seq, close()); recv returns
#                         the first element if it equals the last, else nan
# A child makes its senders before its receivers (receivers wait for the
# sender's segment where the sender creates it).
# --------------------------------------------------------------------------


class Transport:
    key = ""
    label = ""
    shmbatch = False
    rtt = False  # also measured in the round trip
    needs = None  # module to import to check availability

    @classmethod
    def available(cls):
        if cls.needs:
            try:
                __import__(cls.needs)
            except Exception as e:  # pragma: no cover - environment
                return f"import {cls.needs} failed: {type(e).__name__}: {e}"
        return None

    @staticmethod
    def setup(ctx, n, name):
        return {"name": name, "n": n}

    @staticmethod
    def teardown(spec):
        pass


class ShmbatchSpscCopy(Transport):
    key = "shmbatch-spsc-copy"
    label = "shmbatch SPSC copy (send/recv)"
    shmbatch = True
    rtt = True
    needs = "shmbatch"

    @staticmethod
    def sender(spec, n):
        from shmbatch import spsc

        tx = spsc.Sender.create(spec["name"], spsc_capacity(n), "f8")
        a = np.zeros(n)
        send_ = tx.send

        def send(seq):
            a[0] = seq
            a[-1] = seq
            send_(a)

        return send, tx.close

    @staticmethod
    def receiver(spec, n):
        from shmbatch import spsc

        rx = spsc.Receiver.open(spec["name"], "f8", timeout=30)
        recv_ = rx.recv

        def recv():
            a = recv_()
            x = a[0]
            return x if a[-1] == x else NAN

        return recv, rx.close


class ShmbatchSpscZeroCopy(Transport):
    key = "shmbatch-spsc-zc"
    label = "shmbatch SPSC zero-copy (reserve+fill / recv_view)"
    shmbatch = True
    needs = "shmbatch"

    @staticmethod
    def sender(spec, n):
        from shmbatch import spsc

        tx = spsc.Sender.create(spec["name"], spsc_capacity(n), "f8")
        reserve = tx.reserve

        def send(seq):
            with reserve(n) as b:
                b.fill(seq)  # the batch is written in place (as the Rust bench)

        return send, tx.close

    @staticmethod
    def receiver(spec, n):
        from shmbatch import spsc

        rx = spsc.Receiver.open(spec["name"], "f8", timeout=30)
        recv_view = rx.recv_view

        def recv():
            with recv_view() as b:
                x = b[0]
                return x if b[-1] == x else NAN

        return recv, rx.close


class ShmbatchMpmcCopy(Transport):
    key = "shmbatch-mpmc-copy"
    label = "shmbatch MPMC copy 1P/1C (send/recv)"
    shmbatch = True
    needs = "shmbatch"

    @staticmethod
    def sender(spec, n):
        from shmbatch import mpmc

        tx = mpmc.Sender.create(spec["name"], ring_batches(n), "f8", max_batch=n)
        a = np.zeros(n)
        send_ = tx.send

        def send(seq):
            a[0] = seq
            a[-1] = seq
            send_(a)

        return send, tx.close

    @staticmethod
    def receiver(spec, n):
        from shmbatch import mpmc

        rx = mpmc.Receiver.open(spec["name"], "f8", timeout=30)
        recv_ = rx.recv

        def recv():
            a = recv_()
            x = a[0]
            return x if a[-1] == x else NAN

        return recv, rx.close


class MpQueue(Transport):
    key = "mp-queue"
    label = "multiprocessing.Queue (ndarray)"
    rtt = True

    @staticmethod
    def setup(ctx, n, name):
        return {"name": name, "n": n, "q": ctx.Queue(maxsize=ring_batches(n))}

    @staticmethod
    def sender(spec, n):
        q = spec["q"]
        k = ring_batches(n)
        # put() pickles later, in a feeder thread: an array must not change until
        # it is pickled. With maxsize k, put number m returns only after batch
        # m-k was received (so pickled), so a pool of k+1 arrays is never
        # overwritten early, and no array is copied before put().
        pool = [np.zeros(n) for _ in range(k + 1)]
        state = [0]
        put = q.put

        def send(seq):
            i = state[0]
            a = pool[i]
            state[0] = i + 1 if i < k else 0
            a[0] = seq
            a[-1] = seq
            put(a)

        def close():
            q.close()
            q.join_thread()

        return send, close

    @staticmethod
    def receiver(spec, n):
        get = spec["q"].get

        def recv():
            a = get()
            x = a[0]
            return x if a[-1] == x else NAN

        return recv, lambda: None


class PipeBytes(Transport):
    key = "mp-pipe-bytes"
    label = "multiprocessing.Pipe send_bytes/recv_bytes"
    rtt = True

    @staticmethod
    def setup(ctx, n, name):
        r, w = ctx.Pipe(duplex=False)
        return {"name": name, "n": n, "r": r, "w": w}

    @staticmethod
    def teardown(spec):
        spec["r"].close()
        spec["w"].close()

    @staticmethod
    def sender(spec, n):
        w = spec["w"]
        a = np.zeros(n)
        send_bytes = w.send_bytes  # takes the array's buffer: no tobytes() copy

        def send(seq):
            a[0] = seq
            a[-1] = seq
            send_bytes(a)

        return send, w.close

    @staticmethod
    def receiver(spec, n):
        r = spec["r"]
        recv_bytes = r.recv_bytes
        frombuffer = np.frombuffer

        def recv():
            a = frombuffer(recv_bytes(), "f8")  # an array over the received bytes
            x = a[0]
            return x if a[-1] == x else NAN

        return recv, r.close


class PipePickle(PipeBytes):
    key = "mp-pipe-pickle"
    label = "multiprocessing.Pipe send/recv (pickle)"
    rtt = False

    @staticmethod
    def sender(spec, n):
        w = spec["w"]
        a = np.zeros(n)
        send_ = w.send

        def send(seq):
            a[0] = seq
            a[-1] = seq
            send_(a)

        return send, w.close

    @staticmethod
    def receiver(spec, n):
        r = spec["r"]
        recv_ = r.recv

        def recv():
            a = recv_()
            x = a[0]
            return x if a[-1] == x else NAN

        return recv, r.close


def _ff_dumps(a):
    return a.tobytes()  # faster_fifo wants bytes; pickling the array is slower


def _ff_loads(buf):
    # buf is a view of faster_fifo's reused message buffer: copy it out
    return np.frombuffer(buf, "f8").copy()


class FasterFifo(Transport):
    key = "faster-fifo"
    label = "faster_fifo.Queue (raw bytes)"
    rtt = True
    needs = "faster_fifo"

    @staticmethod
    def setup(ctx, n, name):
        import faster_fifo

        # Room for the same number of batches as the other bounded queues,
        # plus message overhead; at least 1 MiB.
        size = max(1 << 20, ring_batches(n) * (8 * n + 64))
        q = faster_fifo.Queue(max_size_bytes=size, loads=_ff_loads, dumps=_ff_dumps)
        return {"name": name, "n": n, "q": q}

    @staticmethod
    def teardown(spec):
        spec["q"].close()

    @staticmethod
    def sender(spec, n):
        q = spec["q"]
        a = np.zeros(n)  # put() serialises at once: the array can be reused
        put = q.put

        def send(seq):
            a[0] = seq
            a[-1] = seq
            put(a, True, 60.0)

        return send, lambda: None

    @staticmethod
    def receiver(spec, n):
        get = spec["q"].get

        def recv():
            a = get(True, 60.0)
            x = a[0]
            return x if a[-1] == x else NAN

        return recv, lambda: None


def _iox2():
    import iceoryx2 as iox2

    iox2.set_log_level(iox2.LogLevel.Error)
    return iox2


class _Iox2Base(Transport):
    needs = "iceoryx2"

    @staticmethod
    def _builders(iox2, node, spec, n):
        name = iox2.ServiceName.new(spec["name"])
        k = ring_batches(n)
        pubsub = (
            node.service_builder(name)
            .publish_subscribe(iox2.Slice[ctypes.c_double])
            .enable_safe_overflow(False)  # no sample is ever dropped
            .subscriber_max_buffer_size(k)
            .max_publishers(1)
            .max_subscribers(1)
        )
        event = node.service_builder(name).event()
        return pubsub, event, k

    @classmethod
    def _publisher(cls, spec, n):
        iox2 = _iox2()
        node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)
        pubsub, event, _ = cls._builders(iox2, node, spec, n)
        svc = pubsub.create()
        ev = event.create()
        pub = (
            svc.publisher_builder()
            .initial_max_slice_len(n)
            .backpressure_strategy(iox2.BackpressureStrategy.RetryUntilDelivered)
            .create()
        )
        notifier = ev.notifier_builder().create()
        keep = [node, svc, ev, pub, notifier]

        def close():
            notifier.delete()
            pub.delete()
            keep.clear()

        return pub, notifier, close

    @classmethod
    def _subscriber(cls, spec, n):
        iox2 = _iox2()
        node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)
        pubsub, event, k = cls._builders(iox2, node, spec, n)
        end = time.monotonic() + 30
        while True:  # the publisher's side creates the services
            try:
                svc = pubsub.open()
                ev = event.open()
                break
            except Exception:
                if time.monotonic() > end:
                    raise
                time.sleep(0.005)
        sub = svc.subscriber_builder().buffer_size(k).create()
        listener = ev.listener_builder().create()
        keep = [node, svc, ev, sub, listener]
        receive = sub.receive
        timed_wait = listener.timed_wait
        nap = iox2.Duration.from_millis(50)

        def next_sample():
            while True:
                s = receive()
                if s is not None:
                    return s
                timed_wait(nap)  # woken by the publisher's notify()

        def close():
            listener.delete()
            sub.delete()
            keep.clear()

        return next_sample, close


class Iox2Copy(_Iox2Base):
    key = "iceoryx2-copy"
    label = "iceoryx2 pub/sub copy (memmove in, copy out)"
    rtt = True

    @classmethod
    def sender(cls, spec, n):
        pub, notifier, close = cls._publisher(spec, n)
        a = np.zeros(n)
        src = a.ctypes.data
        nbytes = 8 * n
        loan = pub.loan_slice_uninit
        notify = notifier.notify
        memmove = ctypes.memmove

        def send(seq):
            a[0] = seq
            a[-1] = seq
            s = loan(n)
            memmove(s.payload_ptr, src, nbytes)
            s.assume_init().send()
            notify()

        return send, close

    @classmethod
    def receiver(cls, spec, n):
        next_sample, close = cls._subscriber(spec, n)
        arr_t = ctypes.c_double * n
        frombuffer = np.frombuffer

        def recv():
            s = next_sample()
            a = frombuffer(arr_t.from_address(s.payload_ptr), "f8").copy()
            s.delete()
            x = a[0]
            return x if a[-1] == x else NAN

        return recv, close


class Iox2ZeroCopy(_Iox2Base):
    key = "iceoryx2-zc"
    label = "iceoryx2 pub/sub zero-copy (loan+fill / read in place)"

    @classmethod
    def sender(cls, spec, n):
        pub, notifier, close = cls._publisher(spec, n)
        loan = pub.loan_slice_uninit
        notify = notifier.notify
        arr_t = ctypes.c_double * n
        frombuffer = np.frombuffer

        def send(seq):
            s = loan(n)
            frombuffer(arr_t.from_address(s.payload_ptr), "f8").fill(seq)  # in place
            s.assume_init().send()
            notify()

        return send, close

    @classmethod
    def receiver(cls, spec, n):
        next_sample, close = cls._subscriber(spec, n)
        at = ctypes.c_double.from_address
        last = 8 * (n - 1)

        def recv():
            s = next_sample()
            p = s.payload_ptr
            x = at(p).value
            y = at(p + last).value
            s.delete()
            return x if y == x else NAN

        return recv, close


class ShmSemRing(Transport):
    key = "shm-sem-ring"
    label = "SharedMemory ring + 2 Semaphores (hand-written)"
    rtt = True

    @staticmethod
    def setup(ctx, n, name):
        from multiprocessing import shared_memory

        k = ring_batches(n)
        shm = shared_memory.SharedMemory(name=name, create=True, size=8 * n * k)
        return {
            "name": name,
            "n": n,
            "k": k,
            "shm": shm,  # the parent's handle; children attach by name
            "empty": ctx.Semaphore(k),
            "full": ctx.Semaphore(0),
        }

    @staticmethod
    def teardown(spec):
        shm = spec["shm"]
        shm.close()
        shm.unlink()

    @staticmethod
    def _attach(spec):
        from multiprocessing import shared_memory

        shm = shared_memory.SharedMemory(name=spec["name"])
        ring = np.ndarray((spec["k"], spec["n"]), "f8", buffer=shm.buf)
        return shm, ring

    @classmethod
    def sender(cls, spec, n):
        shm, ring = cls._attach(spec)
        k = spec["k"]
        acquire = spec["empty"].acquire
        release = spec["full"].release
        a = np.zeros(n)
        state = [0]

        def send(seq):
            a[0] = seq
            a[-1] = seq
            i = state[0]
            acquire()
            ring[i] = a
            release()
            state[0] = i + 1 if i + 1 < k else 0

        def close():
            nonlocal ring
            ring = None
            shm.close()

        return send, close

    @classmethod
    def receiver(cls, spec, n):
        shm, ring = cls._attach(spec)
        k = spec["k"]
        acquire = spec["full"].acquire
        release = spec["empty"].release
        state = [0]

        def recv():
            i = state[0]
            acquire()
            a = ring[i].copy()
            release()
            state[0] = i + 1 if i + 1 < k else 0
            x = a[0]
            return x if a[-1] == x else NAN

        def close():
            nonlocal ring
            ring = None
            shm.close()

        return recv, close


# Spec objects holding the parent's SharedMemory must not travel to children
# (a SharedMemory pickles by name, which is all the children need anyway).
def _child_spec(spec):
    return {k: v for k, v in spec.items() if k != "shm"}


TRANSPORTS = {
    t.key: t
    for t in [
        ShmbatchSpscCopy,
        ShmbatchSpscZeroCopy,
        ShmbatchMpmcCopy,
        MpQueue,
        PipeBytes,
        PipePickle,
        FasterFifo,
        Iox2Copy,
        Iox2ZeroCopy,
        ShmSemRing,
    ]
}
RTT_LABELS = {
    "shmbatch-spsc-copy": "shmbatch SPSC (two queues, send/recv)",
    "mp-queue": "multiprocessing.Queue (two queues)",
    "mp-pipe-bytes": "multiprocessing.Pipe duplex, send_bytes/recv_bytes",
    "faster-fifo": "faster_fifo.Queue (two queues)",
    "iceoryx2-copy": "iceoryx2 pub/sub + event (two services)",
    "shm-sem-ring": "SharedMemory rings + Semaphores (two rings)",
}


# --------------------------------------------------------------------------
# Children
# --------------------------------------------------------------------------


def _chunk(n):
    """Sends between two looks at the clock."""
    return 64 if n <= 256 else 8 if n <= 4096 else 1


def _child(role, key, n, send_spec, recv_spec, cfg, barrier, results):
    """One process of a measurement. role: 'producer'/'consumer' (throughput)
    or 'ping'/'pong' (round trip)."""
    t = TRANSPORTS[key]
    closers = []
    try:
        if cfg.get("pin"):
            cpus = sorted(os.sched_getaffinity(0))
            os.sched_setaffinity(0, {cpus[0] if role in ("producer", "ping") else cpus[-1]})
        send = recv = None
        if send_spec is not None:
            send, c = t.sender(send_spec, n)
            closers.append(c)
        if recv_spec is not None:
            recv, c = t.receiver(recv_spec, n)
            closers.append(c)
        bw = cfg["barrier_timeout"]
        barrier.wait(bw)
        if role == "producer":
            out = _produce(send, n, cfg, barrier, bw)
        elif role == "consumer":
            out = _consume(recv, cfg, barrier, bw)
        elif role == "ping":
            out = _ping(send, recv, cfg)
        else:
            out = _pong(send, recv)
        results.put((role, "ok", out))
    except BaseException:
        try:
            barrier.abort()
        except Exception:
            pass
        results.put((role, "error", traceback.format_exc(limit=6)))
    finally:
        for c in reversed(closers):
            try:
                c()
            except Exception:
                pass


def _produce(send, n, cfg, barrier, bw):
    now = time.perf_counter
    chunk = _chunk(n)
    rng = range(chunk)
    seq = 0
    reps = []
    for rep in range(cfg["reps"] + 1):  # rep 0: warm-up
        dur = cfg["warmup"] if rep == 0 else cfg["duration"]
        barrier.wait(bw)
        t0 = now()
        deadline = t0 + dur
        start = seq
        while True:
            for _ in rng:
                send(seq)
                seq += 1
            if now() >= deadline:
                break
        send(SENTINEL)
        reps.append({"t0": t0, "sent": seq - start})
    return reps


def _consume(recv, cfg, barrier, bw):
    now = time.perf_counter
    expect = 0
    reps = []
    for rep in range(cfg["reps"] + 1):
        barrier.wait(bw)
        start = expect
        errors = 0
        while True:
            x = recv()
            if x == expect:
                expect += 1
            elif x == SENTINEL:
                break
            else:  # skipped, repeated or torn batch
                errors += 1
                expect = int(x) + 1 if x == x else expect + 1
        t1 = now()
        reps.append({"t1": t1, "received": expect - start, "errors": errors})
    return reps


def _ping(send, recv, cfg):
    now = time.perf_counter_ns
    seq = 0
    errors = 0
    reps = []
    for rep in range(cfg["reps"] + 1):
        dur = cfg["rtt_warmup"] if rep == 0 else cfg["rtt_duration"]
        lat = []
        append = lat.append
        end = now() + int(dur * 1e9)
        while True:
            t = now()
            send(seq)
            x = recv()
            t2 = now()
            append(t2 - t)
            if x != seq:
                errors += 1
            seq += 1
            if t2 >= end:
                break
        if rep:
            reps.append(np.asarray(lat, dtype=np.int64))
    send(SENTINEL)
    out = []
    for lat in reps:
        us = lat / 1000.0
        out.append(
            {
                "n": int(lat.size),
                "p50_us": float(np.percentile(us, 50)),
                "p99_us": float(np.percentile(us, 99)),
                "mean_us": float(us.mean()),
            }
        )
    return {"reps": out, "errors": errors}


def _pong(send, recv):
    count = 0
    while True:
        x = recv()
        if x == SENTINEL:
            return {"echoed": count}
        send(x)
        count += 1


# --------------------------------------------------------------------------
# Parent: running one measurement, cleaning up
# --------------------------------------------------------------------------

LIVE = []  # child processes alive now, for the emergency cleanup


def _kill(procs):
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(2)
        if p.is_alive():
            p.kill()
            p.join(2)


def _run_pair(ctx, key, n, roles, cfg, timeout):
    """Run two children, return {role: output} or raise RuntimeError."""
    import queue as queue_mod

    results = ctx.Queue()
    barrier = ctx.Barrier(2)
    procs = []
    try:
        for role, send_spec, recv_spec in roles:
            p = ctx.Process(
                target=_child,
                name=f"bench-{key}-{n}-{role}",
                args=(role, key, n, send_spec, recv_spec, cfg, barrier, results),
                daemon=True,
            )
            p.start()
            procs.append(p)
            LIVE.append(p)
        out, errors = {}, {}
        end = time.monotonic() + timeout
        first_error = None
        while len(out) + len(errors) < len(procs):
            now = time.monotonic()
            if now > end:
                errors["timeout"] = f"no result within {timeout:.0f} s"
                break
            if first_error and now > first_error + 3:
                break  # the other side is stuck: it gets killed below
            try:
                role, status, data = results.get(timeout=0.25)
            except queue_mod.Empty:
                if all(not p.is_alive() for p in procs):
                    # both gone; give the queue's feeder a last chance
                    try:
                        role, status, data = results.get(timeout=1)
                    except queue_mod.Empty:
                        errors["exit"] = "children exited without a result: " + ", ".join(
                            f"{p.name} rc={p.exitcode}" for p in procs
                        )
                        break
                else:
                    continue
            if status == "ok":
                out[role] = data
            else:
                errors[role] = data
                first_error = first_error or time.monotonic()
        for p in procs:
            p.join(5)
        if errors:
            # one line per side (the exception), then the full tracebacks
            short = "; ".join(f"{k}: {v.strip().splitlines()[-1]}" for k, v in errors.items())
            raise RuntimeError(short + "\n" + "\n".join(f"[{k}] {v}" for k, v in errors.items()))
        return out
    finally:
        _kill(procs)
        for p in procs:
            if p in LIVE:
                LIVE.remove(p)
        results.close()
        results.join_thread()


def _leftovers(prefix):
    return sorted(glob.glob(f"/dev/shm/{prefix}*"))


def _remove_leftovers(prefix):
    """Remove segments a failed measurement left behind; return their names."""
    gone = []
    for path in _leftovers(prefix):
        name = os.path.basename(path)
        try:
            import shmbatch

            shmbatch.remove(name)
        except Exception:
            try:
                os.unlink(path)
            except OSError:
                continue
        gone.append(name)
    return gone


def measure_throughput(ctx, key, n, cfg, prefix):
    """cfg["reps"] runs, each in a fresh pair of processes (with its own warm-up):
    where the scheduler places a pair changes its figures more than anything
    else on a small machine, so the runs sample it independently."""
    reps = []
    for rep in range(cfg["reps"]):
        reps.append(_throughput_run(ctx, key, n, cfg, f"{prefix}-{key}-{n}-r{rep}"))
    return _summary(reps, ["batches_per_s", "gb_per_s"])


def _throughput_run(ctx, key, n, cfg, name):
    t = TRANSPORTS[key]
    spec = t.setup(ctx, n, name)
    try:
        cs = _child_spec(spec)
        timeout = 30 + (cfg["duration"] + cfg["warmup"]) * 4
        out = _run_pair(
            ctx, key, n, [("consumer", None, cs), ("producer", cs, None)], dict(cfg, reps=1), timeout
        )
    finally:
        t.teardown(spec)
        left = _remove_leftovers(name)
    p, c = out["producer"][1], out["consumer"][1]  # [0] is the warm-up
    secs = c["t1"] - p["t0"]
    run = {
        "batches": c["received"],
        "sent": p["sent"],
        "errors": c["errors"],
        "seconds": secs,
        "batches_per_s": c["received"] / secs,
        "gb_per_s": c["received"] * 8 * n / secs / 1e9,
        "verified": c["errors"] == 0 and c["received"] == p["sent"],
    }
    if not run["verified"]:
        raise RuntimeError(f"data check failed: {run}")
    run["left_behind"] = left  # segments still there after both sides closed
    return run


def measure_rtt(ctx, key, cfg, prefix):
    """cfg["reps"] runs, each in a fresh pair of processes (see measure_throughput)."""
    runs = [_rtt_run(ctx, key, cfg, f"{prefix}-rtt-{key}-r{rep}") for rep in range(cfg["reps"])]
    res = _summary(runs, ["p50_us", "p99_us", "mean_us"])
    res["round_trips"] = sum(r["n"] for r in runs)
    return res


def _rtt_run(ctx, key, cfg, base):
    t = TRANSPORTS[key]
    if key == "mp-pipe-bytes":
        # one duplex pipe: each end sends and receives
        a, b = ctx.Pipe(duplex=True)
        ab = {"name": base, "n": 1, "w": a, "r": b}
        ba = {"name": base, "n": 1, "w": b, "r": a}
        specs = [ab, ba]
    else:
        ab = t.setup(ctx, 1, base + "-ab")
        ba = t.setup(ctx, 1, base + "-ba")
        specs = [ab, ba]
    try:
        cab, cba = _child_spec(ab), _child_spec(ba)
        timeout = 30 + (cfg["rtt_duration"] + cfg["rtt_warmup"]) * 4
        out = _run_pair(
            ctx, key, 1, [("pong", cba, cab), ("ping", cab, cba)], dict(cfg, reps=1), timeout
        )
    finally:
        if key == "mp-pipe-bytes":
            a.close()
            b.close()
        else:
            for s in specs:
                t.teardown(s)
        left = _remove_leftovers(base)
    ping = out["ping"]
    if ping["errors"]:
        raise RuntimeError(f"round trip returned wrong values {ping['errors']} times")
    return dict(ping["reps"][0], left_behind=left)


def _summary(reps, fields):
    out = {"reps": reps, "left_behind": [x for r in reps for x in r.get("left_behind", [])]}
    for f in fields:
        vals = [r[f] for r in reps]
        out[f] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
    return out


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def _si(x, unit):
    for div, p in [(1e9, "G"), (1e6, "M"), (1e3, "k")]:
        if x >= div:
            return f"{x / div:.3g} {p}{unit}"
    return f"{x:.3g} {unit}"


def _gb(x):
    if x >= 1:
        return f"{x:.3g} GB/s"
    if x >= 1e-3:
        return f"{x * 1e3:.3g} MB/s"
    return f"{x * 1e6:.3g} kB/s"


def _ratio(x):
    return f"{x:.3g}x" if x < 100 else f"{x:.0f}x"


def _cell(res, field, fmt):
    if "error" in res:
        return "not measured"
    m = res[field]
    return f"{fmt(m['median'])} ({fmt(m['min'])} – {fmt(m['max'])})"


def analyse(thr, sizes):
    """Ratios and goals from the medians."""
    med = {
        k: {n: r[n]["batches_per_s"]["median"] for n in sizes if "error" not in r.get(n, {"error": 1})}
        for k, r in thr.items()
    }
    peers = [k for k in thr if not TRANSPORTS[k].shmbatch]
    ratios = {}
    for n in sizes:
        row = {}
        ok_peers = {k: med[k][n] for k in peers if n in med.get(k, {})}
        best = max(ok_peers, key=ok_peers.get) if ok_peers else None
        row["best_peer"] = best
        row["best_peer_batches_per_s"] = ok_peers.get(best) if best else None
        q = med.get("mp-queue", {}).get(n)
        for k in [k for k in thr if TRANSPORTS[k].shmbatch]:
            v = med.get(k, {}).get(n)
            if v is None:
                continue
            row[k] = {
                "vs_mp_queue": v / q if q else None,
                "vs_best_peer": v / ok_peers[best] if best else None,
                "slowest_peer_beaten": all(v >= pv for pv in ok_peers.values()),
            }
        ratios[n] = row

    def goal_a(k):
        vals = {n: ratios[n].get(k, {}).get("vs_mp_queue") for n in sizes}
        if any(v is None for v in vals.values()):
            return {"verdict": "not measured", "ratios": vals}
        worst = min(vals, key=vals.get)
        return {
            "verdict": "met" if all(v >= 30 for v in vals.values()) else "missed",
            "worst_size": worst,
            "worst_ratio": vals[worst],
            "ratios": vals,
        }

    def goal_b(k):
        vals = {n: ratios[n].get(k, {}).get("vs_best_peer") for n in sizes}
        if any(v is None for v in vals.values()):
            return {"verdict": "not measured", "ratios": vals}
        lost = [n for n in sizes if vals[n] < 1]
        worst = min(vals, key=vals.get)
        return {
            "verdict": "met" if not lost else "missed",
            "sizes_lost": lost,
            "worst_size": worst,
            "worst_ratio": vals[worst],
            "worst_peer": ratios[worst]["best_peer"],
            "ratios": vals,
        }

    goals = {
        "a_copy": goal_a("shmbatch-spsc-copy"),
        "a_zero_copy": goal_a("shmbatch-spsc-zc"),
        "b_copy": goal_b("shmbatch-spsc-copy"),
        "b_zero_copy": goal_b("shmbatch-spsc-zc"),
    }
    zc = thr.get("shmbatch-spsc-zc", {}).get(65536, {})
    goals["c_zero_copy_65536_gb_per_s"] = zc.get("gb_per_s") if "error" not in zc else None
    return ratios, goals


def render(meta, thr, rtt, ratios, goals, sizes, skipped):
    L = []
    w = L.append
    w(f"## shmbatch Python benchmark ({'quick' if meta['config']['quick'] else 'full'} run)")
    w("")
    w(
        f"{meta['cpu_model']}, {meta['cpus']} CPUs, Linux {meta['kernel']}, Python "
        f"{meta['python']}, numpy {meta['packages'].get('numpy')}, shmbatch "
        f"{meta['packages'].get('shmbatch')}, faster-fifo {meta['packages'].get('faster-fifo')}, "
        f"iceoryx2 {meta['packages'].get('iceoryx2')} (shmbatch native module built "
        f"{meta['shmbatch_build'].get('mtime')}, sha256 {meta['shmbatch_build'].get('sha256_16')}). "
        "Two processes (spawn), "
        f"median of {meta['config']['reps']} runs of {meta['config']['duration']} s per cell, "
        f"each run in a fresh pair of processes{' pinned to two CPUs' if meta['config']['pin'] else ''} "
        f"(min – max in brackets). Load average at start: {meta['loadavg_start']}."
    )
    busy = float(meta["loadavg_start"].split()[0])
    if busy > 0.5:
        w("")
        w(
            f"**Warning: the machine was busy at the start (1-minute load {busy:.2f}); "
            "figures from a shared machine move a lot.**"
        )
    w("")
    if thr:
        _render_throughput(w, thr, ratios, goals, sizes)
        w("")
        total = sum(r["batches"] for rs in thr.values() for c in rs.values() if "reps" in c for r in c["reps"])
        w(
            f"Data check: the consumer checked the first and last element of every batch "
            f"against its sequence number and counted them: {total:,} batches in the measured "
            "runs, none missing, repeated or torn (a cell that fails the check is reported "
            "as not measured)."
        )
        w("")
    if rtt:
        _render_rtt(w, rtt)
    errs = [(k, n, r["error"]) for k, rs in thr.items() for n, r in rs.items() if "error" in r]
    errs += [(k, "round trip", r["error"]) for k, r in rtt.items() if "error" in r]
    if errs or skipped:
        w("")
        w("### Not measured")
        w("")
        for k, why in skipped.items():
            w(f"- {TRANSPORTS[k].label}: {why}")
        for k, n, e in errs:
            w(f"- {TRANSPORTS[k].label} ({n}): {e.splitlines()[0] if e else e}")
    return "\n".join(L)


def _render_throughput(w, thr, ratios, goals, sizes):
    head = "| transport | " + " | ".join(f"{n} f64" for n in sizes) + " |"
    sep = "|---|" + "---|" * len(sizes)
    for title, field, fmt in [
        ("Throughput, batches/s", "batches_per_s", lambda x: _si(x, "/s")),
        ("Throughput, payload GB/s", "gb_per_s", _gb),
    ]:
        w(f"### {title}")
        w("")
        w(head)
        w(sep)
        for k, res in thr.items():
            cells = [_cell(res.get(n, {"error": "-"}), field, fmt) for n in sizes]
            w(f"| {TRANSPORTS[k].label} | " + " | ".join(cells) + " |")
        w("")
    w("### Ratios (medians; above 1x: shmbatch faster)")
    w("")
    w("| batch | SPSC copy / mp.Queue | SPSC zero-copy / mp.Queue | MPMC copy / mp.Queue | best peer | SPSC copy / best peer | SPSC zero-copy / best peer |")
    w("|---|---|---|---|---|---|---|")
    for n in sizes:
        r = ratios[n]

        def g(k, f):
            v = r.get(k, {}).get(f)
            return _ratio(v) if v else "–"

        bp = r["best_peer"]
        bps = f"{TRANSPORTS[bp].label}: {_si(r['best_peer_batches_per_s'], '/s')}" if bp else "–"
        w(
            f"| {n} f64 | {g('shmbatch-spsc-copy', 'vs_mp_queue')} | {g('shmbatch-spsc-zc', 'vs_mp_queue')} "
            f"| {g('shmbatch-mpmc-copy', 'vs_mp_queue')} | {bps} | {g('shmbatch-spsc-copy', 'vs_best_peer')} "
            f"| {g('shmbatch-spsc-zc', 'vs_best_peer')} |"
        )
    w("")
    for n in sizes:
        r = ratios[n]
        c = r.get("shmbatch-spsc-copy", {}).get("vs_mp_queue")
        z = r.get("shmbatch-spsc-zc", {}).get("vs_mp_queue")
        if c and z:
            w(
                f"- {n} f64: shmbatch SPSC copy {_ratio(c)} faster than multiprocessing.Queue, "
                f"zero-copy {_ratio(z)} faster"
            )
    w("")
    w("### Goals")
    w("")

    def ga(g, what):
        if g["verdict"] == "not measured":
            return f"{what}: not measured"
        return f"{what}: **{g['verdict']}** (lowest {_ratio(g['worst_ratio'])} at {g['worst_size']} f64)"

    def gb(g, what):
        if g["verdict"] == "not measured":
            return f"{what}: not measured"
        lost = ", ".join(f"{n}" for n in g["sizes_lost"]) or "none"
        return (
            f"{what}: **{g['verdict']}** (lowest {_ratio(g['worst_ratio'])} at {g['worst_size']} f64 "
            f"against {TRANSPORTS[g['worst_peer']].label}; sizes lost: {lost})"
        )

    w("- (a) shmbatch >= 30x multiprocessing.Queue at every size:")
    w(f"  - {ga(goals['a_copy'], 'copying path (send/recv)')}")
    w(f"  - {ga(goals['a_zero_copy'], 'zero-copy path (reserve/recv_view)')}")
    w("- (b) shmbatch at least as fast as every peer at every size:")
    w(f"  - {gb(goals['b_copy'], 'copying path (send/recv)')}")
    w(f"  - {gb(goals['b_zero_copy'], 'zero-copy path (reserve/recv_view)')}")
    c = goals["c_zero_copy_65536_gb_per_s"]
    if c:
        w(
            f"- (c) zero-copy receive, 65536 f64: **{c['median']:.3g} GB/s** "
            f"(min {c['min']:.3g}, max {c['max']:.3g}; compare with the Rust figure)"
        )
    else:
        w("- (c) zero-copy receive, 65536 f64: not measured")


def _render_rtt(w, rtt):
    w("### Round trip, one f64 (µs; median of runs, p50 min – max in brackets)")
    w("")
    w("| transport | p50 | p99 | mean | round trips |")
    w("|---|---|---|---|---|")
    for k, res in rtt.items():
        label = RTT_LABELS.get(k, TRANSPORTS[k].label)
        if "error" in res:
            w(f"| {label} | not measured | | | |")
            continue
        p50 = res["p50_us"]
        w(
            f"| {label} | {p50['median']:.2f} ({p50['min']:.2f} – {p50['max']:.2f}) | "
            f"{res['p99_us']['median']:.2f} | {res['mean_us']['median']:.2f} | {res['round_trips']} |"
        )
    w("")


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _versions():
    from importlib import metadata

    out = {}
    for p in ["shmbatch", "numpy", "faster-fifo", "iceoryx2"]:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def _shmbatch_build():
    """Which build of shmbatch ran: its native module's path, mtime and hash."""
    try:
        import hashlib
        import shmbatch._shmbatch as native

        path = native.__file__
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:16]
        mtime = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(os.path.getmtime(path)))
        return {"path": path, "mtime": mtime, "sha256_16": digest}
    except Exception as e:  # pragma: no cover - environment
        return {"error": f"{type(e).__name__}: {e}"}


def _iox2_state():
    return set(glob.glob("/dev/shm/iox2_*")) | set(glob.glob("/tmp/iceoryx2/**", recursive=True))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short smoke run (about a minute)")
    ap.add_argument("--json", metavar="PATH", help="write all figures to PATH")
    ap.add_argument("--only", metavar="KEYS", help="comma-separated transports (default: all): " + ",".join(TRANSPORTS))
    ap.add_argument("--sizes", metavar="N,..", help="batch sizes (default: %s)" % ",".join(map(str, SIZES)))
    ap.add_argument("--no-rtt", action="store_true", help="skip the round trip")
    ap.add_argument(
        "--pin",
        action="store_true",
        help="pin the two processes of a pair to the first and the last CPU (default: the scheduler places them)",
    )
    ap.add_argument("--no-throughput", action="store_true", help="skip the throughput")
    args = ap.parse_args(argv)

    started = time.monotonic()
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else SIZES
    keys = args.only.split(",") if args.only else list(TRANSPORTS)
    for k in keys:
        if k not in TRANSPORTS:
            ap.error(f"unknown transport {k!r}")
    cfg = {
        "quick": args.quick,
        "reps": 3,
        "duration": 0.12 if args.quick else 0.6,
        "warmup": 0.05 if args.quick else 0.15,
        "rtt_duration": 0.2 if args.quick else 0.8,
        "rtt_warmup": 0.05 if args.quick else 0.2,
        "barrier_timeout": 60.0,
        "pin": args.pin,
    }
    prefix = f"pybench-{os.getpid()}"
    ctx = mp.get_context("spawn")
    meta = {
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "packages": _versions(),
        "shmbatch_build": _shmbatch_build(),
        "loadavg_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": cfg,
        "sizes": sizes,
        "segment_prefix": prefix,
        "start_method": "spawn",
    }
    skipped = {}
    for k in keys:
        why = TRANSPORTS[k].available()
        if why:
            skipped[k] = why
    run_keys = [k for k in keys if k not in skipped]
    iox_before = _iox2_state()

    thr, rtt = {}, {}
    try:
        if not args.no_throughput:
            for k in run_keys:
                thr[k] = {}
                for n in sizes:
                    t0 = time.monotonic()
                    try:
                        thr[k][n] = measure_throughput(ctx, k, n, cfg, prefix)
                        m = thr[k][n]["batches_per_s"]["median"]
                        msg = f"{_si(m, 'batches/s')}, {_gb(m * 8 * n / 1e9)}"
                    except Exception as e:
                        thr[k][n] = {"error": f"{type(e).__name__}: {e}"}
                        msg = "FAILED: " + thr[k][n]["error"].splitlines()[0][:400]
                    print(
                        f"# throughput {k:20s} {n:6d} f64: {msg} ({time.monotonic() - t0:.1f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
        if not args.no_rtt:
            for k in run_keys:
                if not TRANSPORTS[k].rtt:
                    continue
                t0 = time.monotonic()
                try:
                    rtt[k] = measure_rtt(ctx, k, cfg, prefix)
                    msg = f"p50 {rtt[k]['p50_us']['median']:.2f} us, p99 {rtt[k]['p99_us']['median']:.2f} us"
                except Exception as e:
                    rtt[k] = {"error": f"{type(e).__name__}: {e}"}
                    msg = "FAILED: " + rtt[k]["error"].splitlines()[0][:400]
                print(f"# round trip {k:20s}: {msg} ({time.monotonic() - t0:.1f} s)", file=sys.stderr, flush=True)
    finally:
        _kill(list(LIVE))
        left = _remove_leftovers(prefix)

    # iceoryx2 keeps a global management segment and /tmp/iceoryx2 directories
    # for all its users; remove what this run created once no node is left.
    iox_new = sorted(_iox2_state() - iox_before)
    iox_removed = []
    if iox_new and not glob.glob("/tmp/iceoryx2/nodes/*"):
        for path in sorted(iox_new, key=len, reverse=True):
            try:
                if os.path.isdir(path):
                    os.rmdir(path)
                else:
                    os.unlink(path)
                iox_removed.append(path)
            except OSError:
                pass
    iox_left = sorted(_iox2_state() - iox_before)

    ratios, goals = analyse(thr, sizes) if thr else ({}, {})
    meta["seconds_total"] = time.monotonic() - started
    meta["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    meta["leftovers"] = {
        "shmbatch_prefix_removed_at_end": left,
        "dev_shm_with_prefix_now": _leftovers(prefix),
        "iceoryx2_created_and_removed": iox_removed,
        "iceoryx2_left": iox_left,
    }
    # Segments still in /dev/shm after both processes of a cell had closed their
    # handles and exited cleanly: the library did not remove them (the bench did).
    leaked = {}
    for k, rs in thr.items():
        for n, r in rs.items():
            if r.get("left_behind"):
                leaked.setdefault(k, []).append(f"throughput {n} f64: {len(r['left_behind'])}")
    for k, r in rtt.items():
        if r.get("left_behind"):
            leaked.setdefault(k, []).append(f"round trip: {len(r['left_behind'])}")
    meta["leftovers"]["left_after_clean_close"] = leaked
    print(render(meta, thr, rtt, ratios, goals, sizes, skipped))
    print()
    clean = not left and not meta["leftovers"]["dev_shm_with_prefix_now"] and not iox_left
    if leaked:
        print("### Cleanup problems")
        print()
        print(
            "Segments that were still in /dev/shm after both processes had closed their "
            "handles (the creator's `close()` should remove them) and exited; the bench "
            "removed them:"
        )
        print()
        for k, where in leaked.items():
            print(f"- {TRANSPORTS[k].label}: " + ", ".join(where))
        print()
    print(
        f"Cleanup: {'no' if clean else 'SOME'} segments of this run left in /dev/shm at the end "
        f"(prefix {prefix}-; removed after failures: {left or 'none'}; iceoryx2 leftovers: {iox_left or 'none'}). "
        f"Total run time {meta['seconds_total']:.0f} s."
    )
    if args.json:
        doc = {
            "meta": meta,
            "throughput": {k: {str(n): r for n, r in v.items()} for k, v in thr.items()},
            "round_trip": rtt,
            "ratios": {str(n): r for n, r in ratios.items()},
            "goals": goals,
            "skipped": skipped,
            "labels": {k: TRANSPORTS[k].label for k in TRANSPORTS},
        }
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2, default=str)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted: children stopped, segments removed", file=sys.stderr)
        sys.exit(130)

"""Functions that child processes run (importable, for the `spawn` start method)."""

import os
import signal
import sys
import time

import numpy as np

import shmbatch
from shmbatch import mpmc, spsc


def add_under_lock(name, rounds):
    a = shmbatch.SharedArray.open(name)
    for _ in range(rounds):
        with a.write() as arr:
            arr += 1


def add_atomically(name, rounds):
    a = shmbatch.SharedArray.open(name)
    for _ in range(rounds):
        a.fetch_add(0, 1)
        a.fetch_add(a.size - 1, 2)


def add_ten(arr):
    """The seed program's worker: the handle arrives pickled (spawn) or inherited (fork)."""
    with arr.write() as a:
        a += 10


def die_inside_write(name, ready):
    a = shmbatch.SharedArray.open(name)
    w = a.write()
    arr = w.__enter__()
    arr[:] = -1.0  # never published: the working copy dies with the process
    ready.set()
    time.sleep(60)


def write_all_equal(name, seconds):
    """Set every element of the array to the same value, over and over."""
    a = shmbatch.SharedArray.open(name)
    end = time.monotonic() + seconds
    k = 0
    while time.monotonic() < end:
        k += 1
        with a.write() as arr:
            arr[:] = k
    return k


def mpmc_send_range(tx, start, count):
    """Send start..start+count one per batch on a pickled MPMC sender."""
    for i in range(start, start + count):
        tx.send(np.array([float(i)]))
    tx.close()


def block_in_recv(name):
    rx = spsc.Receiver.open(name)
    print("blocking", flush=True)
    try:
        rx.recv()
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(0)

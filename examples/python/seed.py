"""The program shmbatch grew from, done safely.

The parent puts [1, 2, 3, 4, 5] in shared memory; a worker process opens it by
name and adds 10 in place under the cross-process lock; the parent prints the
array before and after. With `multiprocessing.shared_memory` this needed a raw
buffer, no lock, and unregistering the segment from the resource tracker.

    pip install ./python && python examples/python/seed.py
"""

import multiprocessing as mp

import numpy as np

import shmbatch


def worker(arr):
    # `arr` arrives pickled by name (spawn) or inherited (fork): either way this
    # process opens the segment itself.
    with arr.write() as a:  # the lock is held for the block; readers never see half
        a += 10


def main():
    name = f"seed-{mp.current_process().pid}"
    with shmbatch.SharedArray.create_from(name, np.array([1.0, 2, 3, 4, 5])) as arr:
        print("Before:", arr.snapshot())
        p = mp.Process(target=worker, args=(arr,))
        p.start()
        p.join()
        print("After:", arr.snapshot())
    # Leaving the `with` block removed the segment: nothing is left in /dev/shm.


if __name__ == "__main__":
    main()

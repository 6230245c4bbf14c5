"""Fixtures of the shmbatch Python suite: unique segment names, the Rust peer
binary, and the check that nothing is left in /dev/shm."""

import itertools
import os
import pathlib
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))

REPO = pathlib.Path(__file__).resolve().parents[2]
PREFIX = f"shmbatch-pytest-{os.getpid()}-"
_counter = itertools.count()


@pytest.fixture
def name():
    """A segment name no other test uses."""
    return f"{PREFIX}{next(_counter)}"


@pytest.fixture(scope="session")
def peer():
    """Path of the Rust `stream_peer` binary (python/src/bin/stream_peer.rs):
    $SHMBATCH_PEER, or built here with cargo."""
    path = os.environ.get("SHMBATCH_PEER")
    if path:
        return path
    subprocess.run(
        ["cargo", "build", "--quiet", "-p", "shmbatch-python", "--bin", "stream_peer"],
        cwd=REPO,
        check=True,
    )
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return str(target / "debug" / "stream_peer")


def leftovers():
    return sorted(f for f in os.listdir("/dev/shm") if f.startswith(PREFIX) or f.startswith("." + PREFIX))


@pytest.fixture(autouse=True, scope="session")
def nothing_left_in_dev_shm():
    yield
    import gc

    gc.collect()
    left = leftovers()
    for f in left:
        os.unlink("/dev/shm/" + f)
    assert not left, f"segments left in /dev/shm: {left}"

"""The examples in examples/python run and print what their docs say."""

import pathlib
import subprocess
import sys

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples" / "python"


def test_seed_prints_before_and_after():
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "seed.py")], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert out == "Before: [1. 2. 3. 4. 5.]\nAfter: [11. 12. 13. 14. 15.]\n"

"""keep_freed_memory: memory freed by one update is used again by the next, not faulted in."""
import ctypes
import subprocess
import sys

import pytest

from sole_r1_ros import allocator

# Four 8 MB blocks allocated and freed, as an update's activations are, ten times over; the
# process's minor page faults per round are printed.
_ROUNDS = '''
import resource, sys
import numpy as np
from sole_r1_ros.allocator import keep_freed_memory
if sys.argv[1] == 'kept':
    assert keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def update():
    blocks = [np.ones(8 << 20, np.uint8) for _ in range(4)]
    del blocks
for _ in range(3):
    update()
before = faults()
for _ in range(10):
    update()
print((faults() - before) / 10)
'''


def _faults_per_round(way: str) -> float:
    done = subprocess.run([sys.executable, '-c', _ROUNDS, way], capture_output=True, text=True,
                          timeout=120, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def test_freed_blocks_are_used_again_without_page_faults():
    default = _faults_per_round('default')
    if default < 500:
        pytest.skip(f'this malloc keeps freed blocks anyway ({default:.0f} faults per round)')
    kept = _faults_per_round('kept')
    assert kept < 0.01 * default, (kept, default)


def test_without_mallopt_nothing_is_changed(monkeypatch):
    def no_libc(*args, **kwargs):
        raise OSError('no C library here')

    monkeypatch.setattr(ctypes, 'CDLL', no_libc)
    assert allocator.keep_freed_memory() is False

"""Lint with flake8 and the ament_flake8 settings (line length 99, single quotes)."""
import os
import subprocess
import sys

import pytest

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.linter
def test_flake8():
    pytest.importorskip('flake8')
    result = subprocess.run(
        [sys.executable, '-m', 'flake8', '--config', os.path.join(_PACKAGE_ROOT, '.flake8'),
         'sole_r1_ros', 'test', 'launch', 'setup.py'],
        cwd=_PACKAGE_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr

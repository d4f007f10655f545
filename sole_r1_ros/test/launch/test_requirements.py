"""One list of run-time requirements, and every install path uses it.

``requirements/run.txt`` is what ``make setup`` (through ``base.txt``), ``docker/Dockerfile``
and the README's ROS install put in; a module the package imports and the list lacks would
work here and fail in Docker (as the compact model's goal encoder once did).
"""
import ast
import importlib.metadata
from pathlib import Path
import re
import sys

_REPO = Path(__file__).resolve().parents[3]
# Installed with ROS (apt, rosdep, or requirements/ros.txt), or this repository's own.
_ROS = {'ament_index_python', 'launch', 'launch_ros', 'tf2_ros', 'rclpy', 'rcl_interfaces',
        'sole_r1_interfaces', 'sole_r1_ros'}
# Modules whose apt package (python3-opencv, ...) carries no pip metadata, by distribution.
_APT_INSTALLED = {'cv2': 'opencv-python-headless', 'yaml': 'pyyaml', 'PIL': 'pillow',
                  'numpy': 'numpy'}


def _names(path: Path) -> set[str]:
    """Normalized distribution names of a requirements file, following its ``-r`` lines."""
    names = set()
    for line in path.read_text().splitlines():
        line = line.split('#')[0].strip()
        if line.startswith('-r '):
            names |= _names(path.parent / line[3:].strip())
        elif line:
            names.add(_normal(re.split(r'[=<>\[; ]', line)[0]))
    return names


def _normal(name: str) -> str:
    return re.sub(r'[-_.]+', '-', name).lower()


def _imported_modules() -> set[str]:
    modules = set()
    for path in (_REPO / 'sole_r1_ros' / 'sole_r1_ros').rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split('.')[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules.add(node.module.split('.')[0])
    return modules - set(sys.stdlib_module_names)


def test_every_module_the_package_imports_is_in_the_run_time_list():
    listed = _names(_REPO / 'requirements' / 'run.txt') | {'torch'}
    by_module = importlib.metadata.packages_distributions()
    missing = []
    for module in sorted(_imported_modules()):
        if module in _ROS or module.endswith(('_msgs', '_srvs')):
            continue
        distributions = {_normal(d) for d in by_module.get(
            module, [_APT_INSTALLED.get(module, module)])}
        if not distributions & listed:
            missing.append(f'{module} ({", ".join(sorted(distributions))})')
    assert not missing, f'imported but not in requirements/run.txt: {missing}'


def test_setup_the_dockerfile_and_the_readme_install_that_list():
    assert '-r run.txt' in (_REPO / 'requirements' / 'base.txt').read_text()
    dockerfile = (_REPO / 'docker' / 'Dockerfile').read_text()
    [copied] = re.findall(r'^COPY requirements/run\.txt (\S+)', dockerfile, re.M)
    assert f'-r {copied}' in dockerfile
    readme = (_REPO / 'README.md').read_text()
    assert 'pip install torch -r src/sole_r1_ros/requirements/run.txt' in readme


def test_a_failed_pip_install_fails_setup_and_is_tried_again(tmp_path):
    """A failed pip install failed nothing: a changed pin left the old packages in place.

    Set-up said nothing, recorded the new requirements' hash, and never tried again (the four
    modules it imports to check were already there).
    """
    import shutil
    import subprocess
    root = tmp_path / 'repo'
    shutil.copytree(_REPO / 'requirements', root / 'requirements')
    (root / 'tools').mkdir()
    shutil.copy(_REPO / 'tools' / 'setup.sh', root / 'tools' / 'setup.sh')
    bin_dir = root / '.venv' / 'bin'
    bin_dir.mkdir(parents=True)
    (bin_dir / 'python').symlink_to(sys.executable)
    (bin_dir / 'pip').write_text('#!/bin/sh\necho "ERROR: No matching distribution found for '
                                 'trl==99.0.0" >&2\nexit 1\n')
    (bin_dir / 'pip').chmod(0o755)
    done = subprocess.run(['bash', str(root / 'tools' / 'setup.sh')], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0, done.stdout + done.stderr
    assert 'No matching distribution' in done.stdout + done.stderr
    assert 'pip could not install the pinned packages' in done.stderr
    assert not (root / '.venv' / '.requirements-hash').exists()

"""docker/robot.sh, compose's robot service, as PID 1: a stop ends both nodes with a checkpoint.

No Docker engine runs here, so the container's one property that matters is made with
``unshare --pid``: the script is PID 1 of a new PID namespace, where the kernel drops every
signal PID 1 has no handler for. ``docker compose stop`` sends SIGTERM to PID 1 and SIGKILLs
the container 10 s later (compose's default grace period), which is what the bare
``bash -c "camera_node & learner_node"`` the service ran before got: the learner never heard
the stop and its run lost everything since the last periodic checkpoint.
"""
import os
import shutil
import signal
import subprocess
import time

import pytest

pytest.importorskip('rclpy')

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
_PARAMS = os.path.join(_REPO, 'sole_r1_ros', 'config', 'real_robot_learn.yaml')


def _as_pid_1(command: str, run_dir, log) -> subprocess.Popen:
    if shutil.which('unshare') is None or shutil.which('learner_node') is None:
        pytest.skip('needs unshare and the installed nodes (. ./env.sh)')
    probe = subprocess.run(['unshare', '--pid', '--fork', 'true'], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f'cannot make a PID namespace here: {probe.stderr.decode().strip()}')
    env = dict(os.environ, SOLE_R1_PARAMS=_PARAMS, SOLE_R1_RUN_DIR=str(run_dir),
               ROS_DOMAIN_ID=os.environ['SOLE_R1_TEST_CHILD_DOMAIN_ID'], PYTHONUNBUFFERED='1')
    return subprocess.Popen(['unshare', '--pid', '--fork', '--kill-child', 'bash', '-c', command],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=_REPO)


def _pid_1_of(outer: subprocess.Popen) -> int:
    """The forked PID 1 of the namespace, as this namespace numbers it."""
    for _ in range(100):
        children = subprocess.run(['pgrep', '-P', str(outer.pid)], capture_output=True,
                                  text=True).stdout.split()
        if children:
            return int(children[0])
        time.sleep(0.05)
    raise AssertionError('unshare started no child')


def _wait_for_text(path, texts: tuple[str, ...], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(text in path.read_text() for text in texts):
            return
        time.sleep(0.2)
    raise AssertionError(f'none of {texts!r} logged:\n{path.read_text()[-3000:]}')


def _stop_like_docker(command: str, tmp_path) -> tuple[bool, list]:
    """SIGTERM to PID 1 once the learner is up; (ended within the grace period, checkpoints)."""
    run_dir = tmp_path / 'run'
    with open(tmp_path / 'log', 'w') as log:
        outer = _as_pid_1(command, run_dir, log)
        try:
            pid_1 = _pid_1_of(outer)
            # active: no robot and no reward node here, so it holds and says so
            _wait_for_text(tmp_path / 'log', ('stale or missing input, holding',
                                              'no reward node publishes sole_r1/progress yet'),
                           60.0)
            os.kill(pid_1, signal.SIGTERM)
            try:
                outer.wait(timeout=10.0)    # compose's default stop_grace_period
                ended = True
            except subprocess.TimeoutExpired:
                ended = False
        finally:
            outer.kill()                     # --kill-child takes the namespace with it
            outer.wait()
    checkpoints = sorted(p.name for p in (run_dir / 'checkpoints').glob('ckpt-*'))
    return ended, checkpoints


@pytest.mark.slow
def test_a_stop_reaches_both_nodes_and_the_learner_writes_its_checkpoint(tmp_path):
    ended, checkpoints = _stop_like_docker('exec bash docker/robot.sh', tmp_path)
    log = (tmp_path / 'log').read_text()
    assert ended, f'robot.sh did not end within 10 s of SIGTERM:\n{log[-3000:]}'
    assert checkpoints, f'no final checkpoint:\n{log[-3000:]}'


@pytest.mark.slow
def test_without_the_script_pid_1_ignores_the_stop(tmp_path):
    """The bare command the service ran before: the reason robot.sh exists."""
    bare = ('camera_node --ros-args --params-file "$SOLE_R1_PARAMS" & '
            'learner_node --ros-args --params-file "$SOLE_R1_PARAMS" '
            '-p learner_node:run_dir:="$SOLE_R1_RUN_DIR"')
    ended, checkpoints = _stop_like_docker(f"exec bash -c '{bare}'", tmp_path)
    assert not ended and not checkpoints

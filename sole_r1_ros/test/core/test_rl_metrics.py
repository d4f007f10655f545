"""Metrics logger: TensorBoard event file plus a JSONL copy; non-finite values are skipped."""
import json
import subprocess
import sys

import pytest

pytest.importorskip('torch')

from sole_r1_ros.rl.metrics import MetricsLogger  # noqa: E402


def test_scalars_go_to_tensorboard_and_jsonl(tmp_path):
    logger = MetricsLogger(tmp_path / 'run')
    logger.log(10, {'critic_loss': 0.5, 'labelled_share': 1, 'success': True,
                    'note': 'text', 'bad': float('nan')})
    logger.log(20, {'return': 3.0}, prefix='eval')
    logger.close()
    assert list((tmp_path / 'run').glob('events.out.tfevents.*'))
    lines = [json.loads(line) for line in (tmp_path / 'run' / 'metrics.jsonl').read_text()
             .splitlines()]
    assert [line['step'] for line in lines] == [10, 20]
    assert lines[0]['critic_loss'] == 0.5 and lines[0]['success'] == 1.0
    assert 'note' not in lines[0] and 'bad' not in lines[0]
    assert lines[1]['prefix'] == 'eval' and lines[1]['return'] == 3.0


def test_jsonl_only_logger_needs_no_tensorboard(tmp_path):
    logger = MetricsLogger(tmp_path, tensorboard=False)
    logger.log(1, {'reward_latency_s': 2.5})
    logger.flush()
    assert not list(tmp_path.glob('events.out.tfevents.*'))
    assert json.loads((tmp_path / 'metrics.jsonl').read_text())['reward_latency_s'] == 2.5
    logger.close()


def test_a_line_is_on_disk_when_logged_and_a_torn_one_is_not_continued(tmp_path):
    """A SIGKILLed learner loses no line it logged, and its resume starts a new line."""
    logger = MetricsLogger(tmp_path, tensorboard=False)
    logger.log(1, {'progress': 40.0}, prefix='reward')
    assert json.loads((tmp_path / 'metrics.jsonl').read_text())['progress'] == 40.0   # unflushed
    with open(tmp_path / 'metrics.jsonl', 'a') as f:
        f.write('{"step": 2, "time": 1.0, "pre')   # the half line a kill leaves
    again = MetricsLogger(tmp_path, tensorboard=False)
    again.log(3, {'progress': 50.0}, prefix='reward')
    again.close()
    logger.close()
    lines = (tmp_path / 'metrics.jsonl').read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[2])['step'] == 3


_FULL_DISK = '''
import glob, json, os, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails (EFBIG)
from sole_r1_ros.rl.metrics import MetricsLogger
folder = sys.argv[1]
log = MetricsLogger(folder)
log.log(0, {'loss': 0.0})
log.flush()
files = [os.path.join(folder, 'metrics.jsonl'), *glob.glob(os.path.join(folder, 'events.*'))]
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (max(map(os.path.getsize, files)) + 10, hard))
for step in range(1, 120):      # the disk is full: no file grows
    log.log(step, {'loss': float(step)})
    if step % 40 == 0:
        log.flush()
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))   # room again
log.log(120, {'loss': 120.0})
log.close()
print(json.dumps({'tensorboard_dropped': log._writer is None}))
'''


def test_a_full_disk_neither_raises_nor_loses_a_line(tmp_path):
    """A full disk stops TensorBoard's events, not the caller; no JSONL line is lost.

    TensorBoard's writer died on a full disk and raised on every later scalar: it ended the
    learner thread. The JSONL lines the disk refused wait for it.
    """
    run = subprocess.run([sys.executable, '-c', _FULL_DISK, str(tmp_path)], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout.splitlines()[-1]) == {'tensorboard_dropped': True}
    assert 'TensorBoard events stopped' in run.stderr and 'lines wait in memory' in run.stderr
    lines = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
    assert [line['step'] for line in lines] == list(range(121))

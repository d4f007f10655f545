"""Metrics logger: TensorBoard event file plus a JSONL copy; non-finite values are skipped."""
import json

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

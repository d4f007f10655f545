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

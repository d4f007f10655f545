"""Annotated reward image and learning-curve plot."""
import json

import numpy as np

from sole_r1_ros.viz.curves import plot_learning_curves
from sole_r1_ros.viz.overlay import draw_overlay


def test_overlay_shows_both_views_above_a_text_panel():
    external = np.full((120, 160, 3), 200, np.uint8)
    wrist = np.full((64, 64, 3), 100, np.uint8)
    picture = draw_overlay(external, wrist, 'close the drawer', [(0, 0.0), (5, 40.0)],
                           'the drawer moved — halfway', title='ep step 5')
    assert picture.dtype == np.uint8 and picture.shape[0] > 240
    np.testing.assert_array_equal(picture[10, 10], [200, 200, 200])       # external view
    np.testing.assert_array_equal(picture[10, 330], [100, 100, 100])      # wrist view
    assert picture[240:].max() > 0                                        # text and curve


def test_overlay_without_wrist_or_history():
    picture = draw_overlay(np.zeros((50, 50, 3), np.uint8), None, 'reach', [], '')
    assert picture.shape[1] >= 480 and picture.shape[2] == 3


def test_learning_curves_from_jsonl_and_nothing_to_plot(tmp_path):
    episodes = tmp_path / 'episodes.jsonl'
    assert not plot_learning_curves(episodes, tmp_path / 'm.jsonl', tmp_path / 'c.png')
    rows = [{'episode_id': f'e{i}', 'env_steps': 100 * i, 'final_progress': 10.0 * i,
             'max_progress': 10.0 * i, 'max_true_progress': 9.0 * i, 'success': i > 7}
            for i in range(10)]
    episodes.write_text('\n'.join(json.dumps(r) for r in rows) + '\n{"cut by a cra')
    metrics = tmp_path / 'm.jsonl'
    metrics.write_text(json.dumps({'step': 50, 'prefix': 'train', 'critic_loss': 1.0}) + '\n')
    assert plot_learning_curves(episodes, metrics, tmp_path / 'c.png', title='t')
    assert (tmp_path / 'c.png').stat().st_size > 10000


def test_a_run_resumed_from_an_older_checkpoint_is_one_timeline():
    """The rows past the checkpoint a crashed session was resumed from are dropped.

    The next session's counts start below them, and plotted they ran the curve backwards.
    """
    from sole_r1_ros.viz.curves import _one_timeline
    first = [{'env_steps': s, 'session': 1} for s in (100, 200, 300, 400)]
    second = [{'env_steps': s, 'session': 2} for s in (250, 350, 450)]
    kept = _one_timeline(first + second, 'env_steps')
    assert [(r['env_steps'], r['session']) for r in kept] == [
        (100, 1), (200, 1), (250, 2), (350, 2), (450, 2)]


def test_an_unanswered_episode_is_plotted_as_not_a_success(tmp_path):
    episodes = tmp_path / 'episodes.jsonl'
    rows = [{'episode_id': 'e0', 'env_steps': 10, 'final_progress': None,
             'max_progress': None, 'answers': 0, 'max_true_progress': None, 'success': False},
            {'episode_id': 'e1', 'env_steps': 20, 'final_progress': 95.0, 'max_progress': 95.0,
             'answers': 3, 'max_true_progress': None, 'success': False}]
    episodes.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    assert plot_learning_curves(episodes, tmp_path / 'm.jsonl', tmp_path / 'c.png')

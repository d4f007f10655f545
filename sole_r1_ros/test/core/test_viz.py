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
    # Resumed at 301, the new session's first episode ended at 326, past the lost one at 325
    # (kept, and an episode counted twice each crash): the session's start says where.
    first = [{'env_steps': s, 'session_start_env_steps': 0} for s in (300, 325)]
    second = [{'env_steps': s, 'session_start_env_steps': 301} for s in (326, 351)]
    kept = _one_timeline(first + second, 'env_steps', 'session_start_env_steps')
    assert [r['env_steps'] for r in kept] == [300, 326, 351]
    unsaid = [{'env_steps': 300, 'session_start_env_steps': 0}, {'env_steps': 401},
              {'env_steps': 501, 'session_start_env_steps': 301}]   # 401: no start said
    assert [r['env_steps'] for r in _one_timeline(unsaid, 'env_steps',
                                                  'session_start_env_steps')] == [300, 401, 501]


def test_an_unanswered_episode_is_left_out_of_the_predicted_curves(tmp_path):
    """A reward outage drew predicted success falling 1.0 -> 0.0 over true successes."""
    from sole_r1_ros.viz.curves import episode_series
    episodes = tmp_path / 'episodes.jsonl'
    rows = [{'episode_id': f'e{i}', 'env_steps': 10 * i, 'final_progress': 95.0 if i < 10
             else None, 'max_progress': 97.0 if i < 10 else None, 'answers': 3 if i < 10 else 0,
             'max_true_progress': 100.0, 'success': True} for i in range(20)]
    episodes.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    assert plot_learning_curves(episodes, tmp_path / 'm.jsonl', tmp_path / 'c.png')
    series = episode_series(rows)
    assert series['predicted_success'] == ([10 * i for i in range(10)], [1.0] * 10)
    assert series['max_predicted'][1] == [97.0] * 10
    assert series['unscored'][0] == [10 * i for i in range(10, 20)]
    assert series['true_success'][1] == [1.0] * 20


def test_negative_answers_are_not_cut_off(tmp_path):
    episodes = tmp_path / 'episodes.jsonl'
    rows = [{'episode_id': 'e0', 'env_steps': 10, 'final_progress': -60.0,
             'max_progress': -60.0, 'answers': 3, 'max_true_progress': None, 'success': False}]
    episodes.write_text(json.dumps(rows[0]) + '\n')
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    seen = {}
    original = plt.subplots

    def spying(*args, **kwargs):
        figure, axes = original(*args, **kwargs)
        seen['axes'] = axes
        return figure, axes
    plt.subplots = spying
    try:
        assert plot_learning_curves(episodes, tmp_path / 'm.jsonl', tmp_path / 'c.png')
    finally:
        plt.subplots = original
    assert seen['axes'][1].get_ylim()[0] <= -65.0

"""Reward-quality metrics on hand-made cases, and `sole-r1 eval reward` on every input kind."""
import json
import math

import numpy as np
import pytest

from sole_r1_ros import cli
from sole_r1_ros.evaluation import metrics
from sole_r1_ros.evaluation.reward_eval import (
    EpisodeScore, LabelledEpisode, load_external, scores_from_results, summarise)


def test_value_order_correlation_of_monotone_and_reversed_sequences():
    assert metrics.value_order_correlation([1, 5, 20, 60, 100]) == pytest.approx(1.0)
    assert metrics.value_order_correlation([100, 60, 20, 5, 1]) == pytest.approx(-1.0)
    assert math.isnan(metrics.value_order_correlation([50, 50, 50]))
    # Ties share their mean rank: [0, 0, 10] against time 0, 1, 2.
    assert metrics.value_order_correlation([0, 0, 10]) == pytest.approx(math.sqrt(3) / 2)


def test_spearman_matches_pearson_of_ranks_and_ignores_scale():
    x = [3.0, 1.0, 4.0, 1.5, 9.0]
    assert metrics.spearman(x, np.exp(x)) == pytest.approx(1.0)
    assert metrics.pearson([1, 2, 3], [1, 2, 4]) == pytest.approx(0.9819805)
    assert list(metrics.rank_average([10, 20, 10, 30])) == [1.5, 3.0, 1.5, 4.0]


def test_auroc_of_perfect_inverted_and_uninformative_scores():
    labels = [True, True, False, False]
    assert metrics.auroc([0.9, 0.8, 0.3, 0.1], labels) == 1.0
    assert metrics.auroc([0.1, 0.2, 0.8, 0.9], labels) == 0.0
    assert metrics.auroc([0.5, 0.5, 0.5, 0.5], labels) == 0.5
    assert metrics.auroc([0.9, 0.2, 0.8, 0.1], labels) == 0.75  # 3 of 4 pairs in order
    assert math.isnan(metrics.auroc([0.1, 0.2], [True, True]))


def _episode(name, truth, success, behaviour='expert', task='t'):
    frames = [np.zeros((4, 4, 3), np.uint8)] * len(truth)
    return LabelledEpisode(name, task, 'do it', frames, np.asarray(truth, float), success,
                           behaviour)


def test_summary_reports_hacking_as_perceived_above_true():
    honest = _episode('a', [0, 30, 60, 100], True)
    stopped = _episode('b', [0, 20, 40, 40], False, 'stop_short')
    scores = [
        EpisodeScore(honest, (1, 2, 3), (30.0, 60.0, 100.0), (30.0, 60.0, 100.0)),
        EpisodeScore(stopped, (1, 2, 3), (20.0, 90.0, 100.0), (20.0, 40.0, 40.0)),
    ]
    summary = summarise(scores)
    assert summary['voc'] == pytest.approx(1.0)  # only the expert episode counts
    assert summary['auroc'] == 0.5  # both end at 100: the success is not told apart
    assert summary['per_behaviour']['stop_short']['perceived'] == 100.0
    assert summary['per_behaviour']['stop_short']['true'] == 40.0
    assert summary['per_task']['t']['perceived'] == 100.0
    assert summary['per_task']['t']['true'] == 70.0
    assert summary['n_queries'] == 6


def _write_clip(folder, name, frames, rewards, **extra):
    import cv2
    path = folder / f'{name}.mp4'
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), 10, (32, 32))
    for value in frames:
        writer.write(np.full((32, 32, 3), value, np.uint8))
    writer.release()
    (folder / f'{name}.json').write_text(json.dumps(
        {'task description': 'Close the drawer.', 'ground-truth rewards': rewards, **extra}))


@pytest.fixture
def external(tmp_path):
    _write_clip(tmp_path, 'good', [40 + 20 * i for i in range(6)],
                [0.0, 0.1, 0.3, 0.5, 0.8, 1.0])
    _write_clip(tmp_path, 'bad', [40] * 6, [0, 5, 10, 10, 5, 0], expert=False)
    return tmp_path


def test_external_json_format_is_read_and_scaled(external):
    episodes = {e.episode_id: e for e in load_external(str(external))}
    good, bad = episodes['good'], episodes['bad']
    assert len(good.external) == 6 and good.external[0].shape == (32, 32, 3)
    assert list(good.truth) == pytest.approx([0, 10, 30, 50, 80, 100])  # fractions -> %
    assert good.success and not bad.success
    assert good.behaviour == 'expert' and bad.behaviour == 'other'
    assert good.goal == 'Close the drawer.'


def test_external_json_with_wrong_frame_count_is_rejected(tmp_path):
    _write_clip(tmp_path, 'short', [50] * 4, [0, 20, 40, 60, 80])
    with pytest.raises(ValueError, match='4 frames but there are 5'):
        load_external(str(tmp_path))


def test_eval_reward_with_oracle_backend_on_external_videos(external, tmp_path):
    out, plot = tmp_path / 'out' / 'r.json', tmp_path / 'out' / 'p.png'
    code = cli.main(['eval', 'reward', '--backend', 'oracle', '--data', str(external),
                     '--num-queries', '5', '--out', str(out), '--plot', str(plot)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result['pearson'] == pytest.approx(1.0, abs=0.01)
    assert result['voc'] == pytest.approx(1.0)
    assert result['auroc'] == 1.0
    assert {'voc', 'pearson', 'auroc', 'per_task'} <= set(result)
    assert result['source'] == 'oracle'
    assert plot.stat().st_size > 1000


def _score_results(path, video, steps, progress):
    """A results.json in the schema `sole-r1 score` writes (only the fields eval reads)."""
    queries = [{'step': s, 'previous_step': 0, 'previous_progress': 0, 'progress': p,
                'valid': True, 'reasoning': '', 'raw_text': '', 'latency_s': 0.5,
                'error': None, 'prompt_hash': ''} for s, p in zip(steps, progress)]
    path.write_text(json.dumps({'video': video, 'goal': 'Close the drawer', 'num_frames': 6,
                                'query_steps': steps, 'queries': queries, 'frames': []}))
    return str(path)


def test_eval_reward_reads_precomputed_score_results(external, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp('results')
    good = _score_results(tmp_path / 'good.results.json', str(external / 'good.mp4'),
                          [1, 3, 5], [10, 50, 100])
    bad = _score_results(tmp_path / 'bad.results.json', 'elsewhere/bad.mp4', [1, 3, 5],
                         [5, 90, 95])
    episodes = load_external(str(external))
    scores = scores_from_results([good, bad], episodes)
    assert [s.truth for s in scores] == [(10.0, 50.0, 100.0), (5.0, 10.0, 0.0)]
    out = tmp_path / 'r.json'
    assert cli.main(['eval', 'reward', '--predictions', good, bad, '--data', str(external),
                     '--out', str(out)]) == 0
    result = json.loads(out.read_text())
    assert result['source'] == 'predictions'
    assert result['per_task']['Close the drawer.']['perceived'] == pytest.approx(97.5)
    assert result['latency_s'] == pytest.approx(0.5)
    with pytest.raises(ValueError, match='matches no labelled episode'):
        scores_from_results([_score_results(tmp_path / 'x.json', 'other.mp4', [1], [3])],
                            episodes)


def test_eval_reward_on_a_synthetic_dataset_with_a_paraphrased_goal(tmp_path):
    pytest.importorskip('metaworld')
    from sole_r1_ros.evaluation.reward_eval import load_synthetic
    from sole_r1_ros.synth import generate, SynthConfig

    root = str(tmp_path / 'data')
    generate(SynthConfig(tasks=('reach-v3',), episodes_per_task=2, image_size=16,
                         frame_stride=4, max_steps=30), root)
    episodes = load_synthetic(root, split='all', goals={'reach-v3': 'go to the goal point'})
    assert [e.behaviour for e in episodes] == ['expert', 'noisy']
    assert all(e.goal == 'go to the goal point' and e.wrist is not None for e in episodes)
    out = tmp_path / 'r.json'
    assert cli.main(['eval', 'reward', '--backend', 'oracle', '--data', root, '--split', 'all',
                     '--paraphrase', '--num-queries', '4', '--out', str(out)]) == 0
    result = json.loads(out.read_text())
    assert result['n_episodes'] == 2
    assert result['pearson'] == pytest.approx(1.0, abs=0.01)
    assert result['voc'] == pytest.approx(result['voc_truth'], abs=0.05)
    assert len(result['episodes'][0]['predicted']) == len(result['episodes'][0]['steps'])

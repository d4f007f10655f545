"""Reward-quality metrics on hand-made cases, and `sole-r1 eval reward` on every input kind."""
import json
import math
import warnings

import numpy as np
import pytest

from sole_r1_ros import cli, labelled
from sole_r1_ros.evaluation import metrics
from sole_r1_ros.evaluation.reward_eval import (
    EpisodeScore, load_episodes, scores_from_results, summarise)
from sole_r1_ros.labelled import LabelledEpisode


def test_value_order_correlation_of_monotone_and_reversed_sequences():
    assert metrics.value_order_correlation([1, 5, 20, 60, 100]) == pytest.approx(1.0)
    assert metrics.value_order_correlation([100, 60, 20, 5, 1]) == pytest.approx(-1.0)
    assert metrics.value_order_correlation([50, 50, 50]) == 0.0   # no order: as noise
    assert math.isnan(metrics.value_order_correlation([50]))
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


@pytest.mark.parametrize('constant', [[50.0] * 4, [0.1] * 3, [0.1] * 100])
def test_pearson_of_a_constant_side_is_nan_quietly(constant):
    """Pearson's r of a constant is undefined: NaN, never a 0/0 warning nor a rounding's 0.

    The mean of three 0.1s is not 0.1 in floating point: the spread it left was taken for a
    signal and the r came out ~1e-17 instead of NaN.
    """
    other = np.arange(len(constant), dtype=float) ** 2
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert math.isnan(metrics.pearson(constant, other))
        assert math.isnan(metrics.pearson(other, constant))
        assert math.isnan(metrics.pearson([1.0], [2.0]))


def test_means_over_episodes_leave_out_the_undefined_ones():
    """A one-frame episode's VOC (NaN) or a task's AUROC with no failure made the mean NaN."""
    vocs = [metrics.value_order_correlation(p) for p in ([10, 50, 90], [40], [90, 50, 10])]
    assert math.isnan(vocs[1]) and metrics.nanmean(vocs) == 0.0
    assert metrics.nanmean([1.0, math.nan, None, 3.0, math.inf]) == 2.0
    assert math.isnan(metrics.nanmean([math.nan, None]))
    scores = [EpisodeScore(_episode(f'{task}{i}', [0, 50, final], None, task=task), (1, 2),
                           (guess / 2, guess), (50.0, float(final)), latency_s=latency)
              for task, i, final, guess, latency in (
                  ('all-succeed', 0, 100, 90.0, math.nan), ('all-succeed', 1, 100, 80.0, 0.5),
                  ('told-apart', 0, 100, 95.0, 1.5), ('told-apart', 1, 40, 30.0, math.nan))]
    summary = summarise(scores)
    assert math.isnan(summary['per_task']['all-succeed']['auroc'])
    assert summary['per_task']['told-apart']['auroc'] == 1.0
    assert summary['auroc_task_mean'] == 1.0 and summary['latency_s'] == 1.0


def _episode(name, truth, success, behaviour='expert', task='t'):
    frames = [np.zeros((4, 4, 3), np.uint8)] * len(truth)
    return LabelledEpisode(name, 'do it', list(truth), frames, task=task, success=success,
                           behaviour=behaviour)


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


def test_auroc_pooled_needs_one_level_across_tasks_and_per_task_does_not():
    """Two tasks each separated perfectly, one scored 40 points lower throughout."""
    scores = []
    for task, level in (('high', 60.0), ('low', 20.0)):
        for index, success in enumerate((True, True, False, False)):
            final = level + (30.0 if success else 0.0) + index
            episode = _episode(f'{task}{index}', [0, 50, 100 if success else 50], success,
                               task=task)
            scores.append(EpisodeScore(episode, (1, 2), (final / 2, final), (50.0, 100.0)))
    summary = summarise(scores)
    assert summary['per_task']['high']['auroc'] == 1.0
    assert summary['per_task']['low']['auroc'] == 1.0
    assert summary['auroc_task_mean'] == 1.0
    # The low task's successes (50-51) rank below the high task's failures (62-63).
    assert summary['auroc'] == pytest.approx(12 / 16)
    only_successes = summarise(scores[:2])
    assert math.isnan(only_successes['per_task']['high']['auroc'])
    assert math.isnan(only_successes['auroc_task_mean'])


def _write_clip(folder, name, frames, rewards, **extra):
    """An episode in the deprecated NAME.mp4 + NAME.json layout."""
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


def _labelled_folder(root):
    """The same two episodes in the labelled-episode layout (videos + labels.json)."""
    for name, values, progress, behaviour in (
            ('good', [40 + 20 * i for i in range(6)], [0, 10, 30, 50, 80, 100], 'expert'),
            ('bad', [40] * 6, [0, 5, 10, 10, 5, 0], 'other')):
        labelled.write_episode(str(root), LabelledEpisode(
            name, 'Close the drawer.', progress,
            [np.full((32, 32, 3), v, np.uint8) for v in values], behaviour=behaviour),
            videos=True)
    return root


def test_old_video_layout_is_read_with_a_deprecation_warning(external):
    with pytest.warns(FutureWarning, match='deprecated layout'):
        episodes = {e.episode_id: e for e in load_episodes(str(external))}
    good, bad = episodes['good'], episodes['bad']
    assert len(good.external) == 6 and good.external[0].shape == (32, 32, 3)
    assert list(good.progress) == pytest.approx([0, 10, 30, 50, 80, 100])  # fractions -> %
    assert good.succeeded and not bad.succeeded
    assert good.behaviour == 'expert' and bad.behaviour == 'other'
    assert good.goal == 'Close the drawer.'


def test_labelled_layout_reads_like_the_old_one(external, tmp_path_factory):
    new = _labelled_folder(tmp_path_factory.mktemp('labelled'))
    with pytest.warns(FutureWarning):
        old = {e.episode_id: e for e in load_episodes(str(external))}
    episodes = load_episodes(str(new))
    assert sorted(e.episode_id for e in episodes) == sorted(old)
    for episode in episodes:
        before = old[episode.episode_id]
        assert list(episode.progress) == pytest.approx(list(before.progress))
        assert (episode.goal, episode.behaviour, episode.succeeded) == (
            before.goal, before.behaviour, before.succeeded)
        assert len(episode.external) == len(before.external)


def test_only_the_frames_the_queries_show_are_decoded_from_videos(tmp_path):
    """A 10-minute real recording at 640x480 held every frame (0.9 MB each) to ask 10."""
    from sole_r1_ros.reward import offline_query_steps
    root = tmp_path / 'long'
    labelled.write_episode(str(root), LabelledEpisode(
        'long', 'Close the drawer.', list(np.linspace(0, 100, 60)),
        [np.full((32, 32, 3), 40 + 3 * i, np.uint8) for i in range(60)]), videos=True)
    [episode] = load_episodes(str(root), num_queries=5)
    steps = offline_query_steps(60, num_queries=5)
    decoded = [i for i, frame in enumerate(episode.external) if frame is not None]
    assert decoded == sorted({0, *steps}) and len(steps) == 5
    assert episode.num_frames == len(episode.external) == 60
    [whole] = load_episodes(str(root))
    assert len(whole.external) == 60


def test_external_json_with_wrong_frame_count_is_rejected(tmp_path):
    _write_clip(tmp_path, 'short', [50] * 4, [0, 20, 40, 60, 80])
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match='4 frames but there are 5'):
        load_episodes(str(tmp_path))


def test_voc_takes_the_experts_that_succeeded_and_a_clock_is_the_bar_to_beat():
    """An expert that failed has no rising progress to order; a clock orders every expert.

    Counted, three push-back experts whose truth stayed 0 moved the pooled VOC by 0.07; and a
    reward blind to the video answering the time elapsed scored VOC 1 and a Pearson above the
    shipped model's on unseen tasks (0.68 against 0.51), said nowhere.
    """
    rising = _episode('a', [0, 30, 60, 100], True)
    failed = _episode('b', [0, 0, 0, 0], False)
    scores = [EpisodeScore(rising, (1, 2, 3), (10.0, 50.0, 90.0), (30.0, 60.0, 100.0)),
              EpisodeScore(failed, (1, 2, 3), (40.0, 20.0, 10.0), (0.0, 0.0, 0.0))]
    summary = summarise(scores)
    assert summary['voc'] == pytest.approx(1.0) and summary['n_voc_episodes'] == 1
    assert summary['voc_all_experts'] == pytest.approx(0.0)   # (1 + -1) / 2
    # the clock answers 0, 50, 100 in each episode
    clock = np.array([0.0, 50.0, 100.0, 0.0, 50.0, 100.0])
    truth = np.array([30.0, 60.0, 100.0, 0.0, 0.0, 0.0])
    assert summary['pearson_time_only'] == pytest.approx(np.corrcoef(clock, truth)[0, 1])


@pytest.mark.parametrize('layout', ['old', 'labelled'])
def test_eval_reward_with_oracle_backend_on_videos(layout, external, tmp_path):
    data = external if layout == 'old' else _labelled_folder(tmp_path / 'new')
    out, plot = tmp_path / 'out' / 'r.json', tmp_path / 'out' / 'p.png'
    code = cli.main(['eval', 'reward', '--backend', 'oracle', '--data', str(data),
                     '--num-queries', '5', '--out', str(out),
                     '--plot', str(plot)])
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
    with pytest.warns(FutureWarning):
        episodes = load_episodes(str(external))
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


def test_eval_reward_on_a_synthetic_dataset_with_a_paraphrased_goal(tmp_path, capsys):
    pytest.importorskip('metaworld')
    from sole_r1_ros.synth import EVAL_PARAPHRASES, generate, SynthConfig

    root = str(tmp_path / 'data')
    generate(SynthConfig(tasks=('reach-v3',), episodes_per_task=2, image_size=16,
                         frame_stride=4, max_steps=30), root)
    episodes = load_episodes(root, split='all', paraphrase=True)
    assert [e.behaviour for e in episodes] == ['expert', 'noisy']
    unseen = EVAL_PARAPHRASES['reach-v3'][0]
    assert all(e.goal == unseen and e.wrist is not None for e in episodes)
    out = tmp_path / 'r.json'
    assert cli.main(['eval', 'reward', '--backend', 'oracle', '--data', root, '--split', 'all',
                     '--paraphrase', '--num-queries', '4', '--out', str(out)]) == 0
    result = json.loads(out.read_text())
    assert result['n_episodes'] == 2
    assert result['labels_from'] == ['sole-r1 synth (simulator ground truth)']
    assert ' true ' in capsys.readouterr().out
    assert result['pearson'] == pytest.approx(1.0, abs=0.01)
    assert result['voc'] == pytest.approx(result['voc_truth'], abs=0.05)
    assert len(result['episodes'][0]['predicted']) == len(result['episodes'][0]['steps'])


def test_eval_reward_does_not_read_paraphrases_from_the_compact_model():
    import ast
    import inspect

    from sole_r1_ros.commands import eval as eval_command
    tree = ast.parse(inspect.getsource(eval_command))
    # Only the warning of episodes the file trained on and the choice of the episodes it held
    # out read the checkpoint's info, and only their episode ids.
    readers = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)
               and node.name in ('_warn_trained_on', '_held_out')}
    for reader in readers.values():
        tree.body.remove(reader)
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(m.startswith('sole_r1_ros.compact') for m in imported), imported
    for name, ids in (('_warn_trained_on', 'train_episode_ids'), ('_held_out', 'val_episode_ids')):
        keys = {node.value for node in ast.walk(readers[name]) if isinstance(node, ast.Constant)
                and isinstance(node.value, str) and node.value.isidentifier()}
        assert ids in keys and 'goals' not in keys and 'paraphrases' not in keys


def test_a_summary_is_strict_json_whatever_numbers_it_holds():
    """A numpy float32 was not JSON at all (a TypeError at the end), and its NaN not null."""
    import json

    from sole_r1_ros.evaluation.reward_eval import to_json
    summary = {'pearson': np.float32('nan'), 'voc': np.float64(0.5), 'n': np.int64(3),
               'per_task': [{'auroc': float('nan')}]}
    assert json.loads(json.dumps(to_json(summary), allow_nan=False)) == {
        'pearson': None, 'voc': 0.5, 'n': 3, 'per_task': [{'auroc': None}]}

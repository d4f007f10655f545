"""The one labelled-episode layout: write, read back, resume, filter, keypoint labels."""
import json
import os
import shutil

import numpy as np
import pytest

from sole_r1_ros import labelled
from sole_r1_ros.labelled import LabelledEpisode


def _frames(count, seed=0, size=16):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (count, size, size, 3), dtype=np.uint8)


def test_npz_episode_round_trips_frames_labels_extras_and_metadata(tmp_path):
    episode = LabelledEpisode(
        'ep-1', 'close the drawer', [0, 12.5, 60, 100], _frames(4), _frames(4, 1),
        task='drawer-close-v3', success=True, behaviour='noisy', split='val',
        paraphrases=('shut the drawer',), extras={'state': np.ones((4, 39), np.float32)},
        meta={'source': 'test', 'eval_paraphrases': ['push the drawer in']})
    labelled.write_episode(str(tmp_path), episode)
    [back] = labelled.load_episodes(str(tmp_path))
    assert np.array_equal(back.external, episode.external)
    assert np.array_equal(back.wrist, episode.wrist)
    assert list(back.progress) == [0, 12.5, 60, 100]
    assert (back.task_id, back.success, back.behaviour, back.split) == (
        'drawer-close-v3', True, 'noisy', 'val')
    assert back.paraphrases == ('shut the drawer',)
    assert back.extras['state'].shape == (4, 39)
    assert back.meta['source'] == 'test' and back.meta['eval_paraphrases'] == [
        'push the drawer in']


def test_video_episode_with_keypoint_labels_and_old_task_key(tmp_path):
    folder = tmp_path / 'episodes' / 'clip'
    folder.mkdir(parents=True)
    labelled.video.write_video(str(folder / 'external.mp4'), list(_frames(5, size=32)), fps=2)
    (folder / 'labels.json').write_text(json.dumps(
        {'task': 'open the door', 'time_s': [0, 2], 'progress': [0, 100]}))
    [episode] = labelled.load_episodes(str(tmp_path))
    assert episode.goal == 'open the door' and episode.wrist is None
    assert list(episode.progress) == pytest.approx([0, 25, 50, 75, 100])  # frames at 0.5 s
    sparse = next(labelled.iter_episodes(str(tmp_path), wanted=lambda n: [n - 1]))
    assert sorted(sparse.external) == [0, 4]  # only the frames asked for are decoded


def test_a_video_transform_applies_to_each_frame_as_it_is_decoded(tmp_path):
    labelled.write_episode(str(tmp_path), LabelledEpisode(
        'clip', 'open the door', [0, 50, 100], _frames(3, size=32), _frames(3, 1, size=32)),
        videos=True)
    npz = tmp_path / 'npz'
    labelled.write_episode(str(npz), LabelledEpisode('raw', 'open the door', [0, 100],
                                                     _frames(2, size=32)))
    seen = []

    def halve(frame):
        seen.append(frame.shape)
        return frame[::2, ::2].copy()

    [plain] = labelled.load_episodes(str(tmp_path))
    [small] = labelled.iter_episodes(str(tmp_path), video_transform=halve)
    assert seen == [(32, 32, 3)] * 6  # every frame of both videos, at the size decoded
    for view in ('external', 'wrist'):
        assert np.array_equal(np.stack(getattr(small, view)),
                              np.stack(getattr(plain, view))[:, ::2, ::2])
    sparse = next(labelled.iter_episodes(str(tmp_path), wanted=lambda n: [n - 1],
                                         video_transform=halve))
    assert sorted(sparse.external) == [0, 2] and sparse.external[2].shape == (16, 16, 3)
    [raw] = labelled.iter_episodes(str(npz), video_transform=halve)
    assert raw.external.shape == (2, 32, 32, 3)  # frames.npz is read as stored


def test_unfinished_episodes_are_skipped_and_filters_apply(tmp_path):
    for index, (task, split, behaviour) in enumerate(
            [('a', 'train', 'expert'), ('a', 'val', 'expert'), ('b', 'val', 'drop')]):
        labelled.write_episode(str(tmp_path), LabelledEpisode(
            f'e{index}', 'do it', [0, 50], _frames(2), task=task, split=split,
            behaviour=behaviour))
    os.remove(tmp_path / 'episodes' / 'e2' / 'labels.json')  # a killed writer's episode
    assert [e.episode_id for e in labelled.load_episodes(str(tmp_path))] == ['e0', 'e1']
    assert [e.episode_id for e in labelled.load_episodes(str(tmp_path), split='val')] == ['e1']
    assert [e.episode_id for e in labelled.load_episodes(str(tmp_path), limit=1)] == ['e0']


def test_selecting_by_behaviour_gives_only_those_episodes(tmp_path):
    """VOC and training select experts by behaviour: a failed drop counted as an expert."""
    for index, behaviour in enumerate(['expert', 'drop', 'expert', 'stop_short']):
        labelled.write_episode(str(tmp_path), LabelledEpisode(
            f'e{index}', 'do it', [0, 50], _frames(2), behaviour=behaviour))
    chosen = labelled.load_episodes(str(tmp_path), behaviours=['expert'])
    assert [(e.episode_id, e.behaviour) for e in chosen] == [('e0', 'expert'), ('e2', 'expert')]
    chosen = labelled.load_episodes(str(tmp_path), behaviours={'drop', 'stop_short'})
    assert [e.episode_id for e in chosen] == ['e1', 'e3']
    assert labelled.load_episodes(str(tmp_path), behaviours=[]) == []


@pytest.mark.parametrize('episode_id', ['..', '.', 'a/../../x', 'a/b', ''])
def test_an_episode_id_that_is_not_one_folder_name_is_refused(tmp_path, episode_id):
    """An id such as '..' or 'a/../../x' wrote its labels.json over the data folder or by it."""
    root = tmp_path / 'data'
    episode = LabelledEpisode(episode_id, 'do it', [0, 50], _frames(2))
    with pytest.raises(ValueError, match='cannot name a folder'):
        labelled.write_episode(str(root), episode)
    with pytest.raises(ValueError, match='cannot name a folder'):
        labelled.folder.read_labels(str(root), episode_id)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob('*')) in (
        [], ['data'])   # nothing written, inside the folder or out


def test_a_first_label_within_tolerance_is_read_as_exactly_0():
    """The prompt says the first frame is 0 %: a 0.3 exported as float noise is snapped."""
    from sole_r1_ros.labelled.labels import resolve_progress
    assert resolve_progress({'progress': [0.3, 20, 60]}, [0, 0.1, 0.2], 'e') == [0.0, 20, 60]
    assert resolve_progress({'progress': [-0.4, 50]}, [0, 0.1], 'e') == [0.0, 50]
    keypoints = {'time_s': [0, 1], 'progress': [0.5, 100.5]}   # interpolated, then snapped
    assert resolve_progress(keypoints, [0, 0.5, 1], 'e') == pytest.approx([0.0, 50.5, 100.0])
    with pytest.raises(ValueError, match='first frame is labelled 0.6%'):
        resolve_progress({'progress': [0.6, 50]}, [0, 0.1], 'e')


def test_an_episode_without_a_success_flag_succeeds_from_95_percent_on():
    """SUCCESS_PCT is the first value that counts as success (>=), as its comment says."""
    from sole_r1_ros.labelled.episode import SUCCESS_PCT
    assert SUCCESS_PCT == 95.0

    def ending_at(value, success=None):
        return LabelledEpisode('e', 'do it', [0, value], _frames(2), success=success)
    assert ending_at(95.0).succeeded and ending_at(100.0).succeeded
    assert not ending_at(94.99).succeeded
    assert not ending_at(100.0, success=False).succeeded and ending_at(10.0, True).succeeded


def test_excluded_tasks_are_skipped_before_their_frames_are_read(tmp_path):
    for task in ('kept', 'held-out'):
        labelled.write_episode(str(tmp_path), LabelledEpisode(
            task, 'do it', [0, 50], _frames(2), task=task))
    # A held-out episode is never opened: unreadable frames there cannot fail the load.
    (tmp_path / 'episodes' / 'held-out' / 'frames.npz').write_bytes(b'not an npz')
    with pytest.raises(ValueError, match='episode held-out: unreadable .*frames.npz'):
        labelled.load_episodes(str(tmp_path))
    kept = labelled.load_episodes(str(tmp_path), exclude_tasks=['held-out'])
    assert [e.episode_id for e in kept] == ['kept']
    assert labelled.load_episodes(str(tmp_path), tasks=['kept', 'held-out'],
                                  exclude_tasks={'held-out'})[0].episode_id == 'kept'


def test_bad_labels_name_the_episode(tmp_path):
    labelled.write_episode(str(tmp_path), LabelledEpisode('bad', 'x', [0, 50], _frames(2)))
    path = tmp_path / 'episodes' / 'bad' / 'labels.json'
    path.write_text(json.dumps({'goal': 'x', 'progress': [0, 50, 70]}))
    with pytest.raises(ValueError, match='episode bad: 3 progress labels for 2 frames'):
        labelled.load_episodes(str(tmp_path))
    path.write_text(json.dumps({'progress': [0, 50]}))
    with pytest.raises(ValueError, match='needs a "goal"'):
        labelled.load_episodes(str(tmp_path))
    path.write_text(json.dumps({'goal': 'x', 'progress': [0, 50]}))
    frames = tmp_path / 'episodes' / 'bad' / 'frames.npz'
    frames.write_bytes(frames.read_bytes()[:100])  # a copy cut short
    with pytest.raises(ValueError, match='episode bad: unreadable .*frames.npz'):
        labelled.load_episodes(str(tmp_path))


def test_hand_labels_wrong_in_common_ways_are_said(tmp_path, caplog):
    """Fractions for percentages, and keypoint times on npz frames with no rate, went in."""
    labelled.write_episode(str(tmp_path), LabelledEpisode('hand', 'x', [0] * 8, _frames(8)))
    path = tmp_path / 'episodes' / 'hand' / 'labels.json'
    path.write_text(json.dumps({'goal': 'x', 'progress': np.linspace(0, 1, 8).tolist()}))
    with caplog.at_level('WARNING'):
        labelled.load_episodes(str(tmp_path))
    assert 'multiply them by 100' in caplog.text
    # Said of a folder: an episode that barely moved beside others that did is no mistake
    # (make compact-model's data gave a warning per such episode).
    caplog.clear()
    labelled.write_episode(str(tmp_path), LabelledEpisode('moved', 'x', [0, 50, 90], _frames(3)))
    with caplog.at_level('WARNING'):
        labelled.load_episodes(str(tmp_path))
    assert 'multiply them by 100' not in caplog.text
    shutil.rmtree(tmp_path / 'episodes' / 'moved')
    path.write_text(json.dumps({'goal': 'x', 'time_s': [0, 0.5], 'progress': [0, 100]}))
    with pytest.raises(ValueError, match="time_s keypoints need the frames' rate"):
        labelled.load_episodes(str(tmp_path))
    path.write_text(json.dumps({'goal': 'x', 'time_s': [0, 0.5], 'progress': [0, 100],
                                'fps': 10}))
    assert labelled.load_episodes(str(tmp_path))[0].progress[-1] == 100.0


@pytest.mark.parametrize('labels, message', [
    ({'split': 'test'}, '"split" must be "train", "val" or absent'),      # was trained on
    ({'split': 'Val'}, '"split" must be'),
    ({'paraphrases': 'shut the drawer'}, '"paraphrases" must be a list of strings')])
def test_a_split_or_paraphrases_of_another_form_are_refused(tmp_path, labels, message):
    """A 'test' split was trained on, and a phrasing string read one character per phrasing."""
    labelled.write_episode(str(tmp_path), LabelledEpisode('e', 'x', [0, 50], _frames(2)))
    path = tmp_path / 'episodes' / 'e' / 'labels.json'
    path.write_text(json.dumps({'goal': 'x', 'progress': [0, 50], **labels}))
    with pytest.raises(ValueError, match=message):
        labelled.load_episodes(str(tmp_path))


def test_wrist_frames_must_pair_with_the_external_ones(tmp_path):
    """Fewer wrist frames crashed a training at a random step; more were taken silently."""
    for count in (1, 3):
        root = str(tmp_path / str(count))
        labelled.write_episode(root, LabelledEpisode('e', 'x', [0, 50], _frames(2),
                                                     wrist=_frames(2, seed=1)))
        frames = tmp_path / str(count) / 'episodes' / 'e' / 'frames.npz'
        np.savez(frames, external=_frames(2), wrist=_frames(count, seed=1))
        with pytest.raises(ValueError, match=f'{count} wrist frames for 2 external'):
            labelled.load_episodes(root)


def test_a_goal_with_a_comma_is_one_task_name(tmp_path):
    """score-bag names a task by its goal; split at every comma, --tasks selected nothing."""
    from sole_r1_ros import cli
    from sole_r1_ros.labelled.folder import split_task_names
    goal = 'close the drawer, then let go'
    for episode_id, task in (('a', goal), ('b', 'reach-v3')):
        labelled.write_episode(str(tmp_path), LabelledEpisode(
            episode_id, goal, [0.0, 50.0, 100.0], [np.full((8, 8, 3), 9, np.uint8)] * 3,
            task=task))
    assert split_task_names(f'reach-v3,{goal}', [str(tmp_path)]) == ['reach-v3', goal]
    assert split_task_names(f' {goal} ', [str(tmp_path)]) == [goal]
    assert split_task_names('x, y,,', [str(tmp_path)]) == ['x', 'y']   # unknown: split
    out = tmp_path / 'e.json'
    assert cli.main(['eval', 'reward', '--backend', 'oracle', '--data', str(tmp_path),
                     '--tasks', goal, '--num-queries', '2', '--out', str(out)]) == 0
    assert json.loads(out.read_text())['n_episodes'] == 1

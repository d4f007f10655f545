"""Episodes only the goal's words explain: object motion (real physics) and undoing."""
import numpy as np
import pytest

from sole_r1_ros import labelled
from sole_r1_ros.cli import main
from sole_r1_ros.labelled import LabelledEpisode
from sole_r1_ros.synth.undo import undo_episode, UNDO_GOALS, write_undo_episodes


@pytest.fixture(scope='module')
def pushed_left(tmp_path_factory):
    pytest.importorskip('metaworld')
    from sole_r1_ros.synth.object_motion import generate_object_motion

    root = str(tmp_path_factory.mktemp('object_motion'))
    scenes = []
    written = generate_object_motion(root, ['push-v3'], directions=['left'],
                                     on_scene=lambda task, count: scenes.append((task, count)))
    return root, written, scenes


def test_the_label_is_the_push_along_the_asked_direction(pushed_left):
    root, written, scenes = pushed_left
    assert written == 4 and scenes == [('push-v3', 4)]
    episodes = {e.episode_id: e for e in labelled.load_episodes(root)}
    # 'left' is the first direction: episodes 0-3 are expert, stop-short, wrong-way, noisy.
    expert, short, wrong, noisy = (episodes[f'push-v3-obj-{i:02d}'] for i in range(4))
    for episode in (expert, short, wrong, noisy):
        assert episode.task_id == 'push-obj-left-v3' and episode.meta['scene'] == 'push-v3'
        assert episode.goal == 'push the puck to the left'
        assert episode.paraphrases == ('slide the puck over to the left', 'move the puck left')
        assert episode.external.shape[1:] == (64, 64, 3) and episode.wrist is not None
        assert episode.external.reshape(episode.num_frames, -1).mean(axis=1).min() > 5
        truth = episode.truth()
        assert truth[0] == 0 and np.all((truth >= 0) & (truth <= 100))
    assert expert.truth()[-1] >= 95 and expert.success and noisy.truth()[-1] >= 80
    assert 20 <= short.truth()[-1] <= 80 and short.behaviour == 'stop-short'
    # Pushed another way under "to the left": the object moved, the asked progress did not.
    assert wrong.truth().max() <= 15 and wrong.behaviour == 'wrong-way' and not wrong.success


def test_object_motion_resumes_and_refuses_scenes_without_an_object(pushed_left):
    from sole_r1_ros.synth.object_motion import episode_specs, generate_object_motion

    root = pushed_left[0]
    assert generate_object_motion(root, ['push-v3'], directions=['left']) == 0
    # Numbered over every direction of the scene, whichever are chosen; pulling the puck back
    # in push-v3 would be the held-out push-back.
    specs = episode_specs('push-v3')
    assert len(specs) == 12 and 'back' not in {s.direction for s in specs}
    assert [s.index for s in episode_specs('push-v3', ['right'])] == [4, 5, 6, 7]
    assert len(episode_specs('soccer-v3')) == 16
    with pytest.raises(ValueError, match='no object-motion goals'):
        episode_specs('drawer-close-v3')
    with pytest.raises(ValueError, match='unknown directions'):
        episode_specs('push-v3', ['up'])


def _episode(name, task, progress, behaviour='expert', success=True, split='train'):
    frames = np.arange(len(progress), dtype=np.uint8)[:, None, None, None].repeat(
        8, 1).repeat(8, 2).repeat(3, 3)
    return LabelledEpisode(episode_id=name, goal='g', progress=progress, external=frames,
                           wrist=frames + 100, task=task, behaviour=behaviour,
                           success=success, split=split)


def test_an_undone_episode_plays_backwards_from_zero_under_the_undoing_goal():
    episode = _episode('d0', 'drawer-open-v3', [0.0, 10.0, 60.0, 100.0, 100.0])
    undone = undo_episode(episode)
    assert undone.episode_id == 'd0-reversed' and undone.task_id == 'drawer-open-reversed-v3'
    assert undone.goal == 'close the drawer'
    assert undone.paraphrases == UNDO_GOALS['drawer-open-v3'][1:]
    assert undone.meta == {'scene': 'drawer-open-v3'} and undone.split == 'train'
    np.testing.assert_allclose(undone.truth(), [0.0, 0.0, 40.0, 90.0, 100.0])
    assert [int(f[0, 0, 0]) for f in undone.external] == [4, 3, 2, 1, 0]
    assert [int(f[0, 0, 0]) for f in undone.wrist] == [104, 103, 102, 101, 100]
    with pytest.raises(ValueError, match='no undoing goal'):
        undo_episode(_episode('w', 'window-open-v3', [0.0, 100.0]))


def test_only_successful_training_experts_are_undone_and_the_cli_writes_them(tmp_path, capsys):
    source, out = str(tmp_path / 'source'), str(tmp_path / 'undo')
    for episode in (_episode('keep', 'drawer-open-v3', [0.0, 50.0, 100.0]),
                    _episode('noisy', 'drawer-close-v3', [0.0, 50.0, 100.0], 'noisy'),
                    _episode('failed', 'drawer-open-v3', [0.0, 30.0, 40.0], success=False),
                    _episode('short', 'drawer-open-v3', [0.0, 50.0, 100.0], 'stop_short'),
                    _episode('val', 'drawer-open-v3', [0.0, 50.0, 100.0], split='val'),
                    _episode('door', 'door-open-v3', [0.0, 50.0, 100.0])):
        labelled.write_episode(source, episode)
    assert main(['synth', '--undo-of', source, '--out', out]) == 0
    written = {e.episode_id: e for e in labelled.load_episodes(out)}
    assert sorted(written) == ['keep-reversed', 'noisy-reversed']
    assert written['noisy-reversed'].goal == 'open the drawer'
    with pytest.raises(ValueError, match='no successful expert'):
        write_undo_episodes(source, str(tmp_path / 'none'), tasks=['reach-v3'])
    with pytest.raises(ValueError, match='no undoing goal'):
        write_undo_episodes(source, str(tmp_path / 'none'), tasks=['door-open-v3'])
    assert main(['synth', '--out', str(tmp_path / 'x')]) != 0
    assert '--tasks is required' in capsys.readouterr().err
    with pytest.raises(SystemExit):  # one kind at a time
        main(['synth', '--object-motion', '--undo-of', source, '--out', str(tmp_path / 'x')])

"""Ghost episodes: the expert's arm motion replayed, the arm touching nothing (real physics)."""
import numpy as np
import pytest

from sole_r1_ros import labelled
from sole_r1_ros.cli import main


@pytest.fixture(scope='module')
def drawer(tmp_path_factory):
    pytest.importorskip('metaworld')
    from sole_r1_ros.synth.generate import generate, SynthConfig

    root = str(tmp_path_factory.mktemp('ghost_source'))
    # Episode 0 of the cycle is an expert; no validation split, so it trains.
    generate(SynthConfig(tasks=('drawer-close-v3',), episodes_per_task=1, val_per_block=0,
                         max_steps=150), root)
    return root


def test_the_ghost_sweeps_like_the_expert_and_moves_nothing(drawer, tmp_path):
    from sole_r1_ros.synth.ghost import write_ghost_episodes

    out = str(tmp_path / 'ghost')
    assert write_ghost_episodes(drawer, out) == 1
    expert = labelled.load_episodes(drawer)[0]
    ghost = labelled.load_episodes(out)[0]
    assert expert.truth()[-1] >= 95 and expert.success
    assert ghost.episode_id == expert.episode_id + '-ghost'
    assert (ghost.behaviour, ghost.split, ghost.task_id, ghost.goal) == (
        'ghost', 'train', 'drawer-close-v3', expert.goal)
    # The drawer never moved, whatever the arm did: the label is the simulator's.
    assert ghost.truth().max() < 5 and not ghost.success
    assert ghost.meta['plan'] == {'kind': 'ghost', 'of': expert.episode_id}
    # Same commands from the same reset: the hand goes where the expert's went.
    assert ghost.num_frames == expert.num_frames
    np.testing.assert_allclose(ghost.extras['actions'], expert.extras['actions'])
    hand_gap = np.linalg.norm(ghost.extras['ee_position'] - expert.extras['ee_position'], axis=1)
    assert hand_gap[0] < 1e-6 and hand_gap.max() < 0.08
    # ... and it is no copy: the frames differ where the drawer stayed open.
    assert np.abs(ghost.external[-1].astype(int) - expert.external[-1].astype(int)).sum() > 0
    # Resumes: nothing left to write.
    assert write_ghost_episodes(drawer, out) == 0


def test_contacts_come_back_after_the_ghost(drawer):
    from sole_r1_ros.sim import MetaWorldRobot, SimConfig
    from sole_r1_ros.synth.ghost import arm_contacts_off

    with MetaWorldRobot(SimConfig(task='drawer-close-v3', image_width=32,
                                  image_height=32)) as robot:
        before = robot.model.geom_contype.copy(), robot.model.geom_conaffinity.copy()
        with arm_contacts_off(robot.model) as count:
            assert count > 10
            assert (robot.model.geom_contype != before[0]).sum() > 0
        np.testing.assert_array_equal(robot.model.geom_contype, before[0])
        np.testing.assert_array_equal(robot.model.geom_conaffinity, before[1])
        with pytest.raises(ValueError, match='no body'):
            with arm_contacts_off(robot.model, root_body='no-such-body'):
                pass


def test_the_cli_writes_ghosts_and_refuses_what_it_cannot_replay(drawer, tmp_path, capsys):
    out = str(tmp_path / 'cli')
    assert main(['synth', '--ghost-of', drawer, '--out', out]) == 0
    assert '1 episodes written now, 1 in' in capsys.readouterr().out
    assert main(['synth', '--ghost-of', drawer, '--tasks', 'reach-v3',
                 '--out', str(tmp_path / 'none')]) != 0
    assert 'no successful expert' in capsys.readouterr().err
    assert main(['synth', '--ghost-of', str(tmp_path), '--out', str(tmp_path / 'x')]) != 0
    assert 'not a sole-r1 synth dataset' in capsys.readouterr().err
    with pytest.raises(SystemExit):  # one kind at a time
        main(['synth', '--undo-of', drawer, '--ghost-of', drawer, '--out', out])
    assert main(['synth', '--ghost-of', drawer, '--out', out, '--behaviour', 'stop_short',
                 '--export-sole-r1', out]) != 0   # every flag it ignores named
    assert ('--behaviour and --export-sole-r1 go with Meta-World expert episodes'
            in capsys.readouterr().err)

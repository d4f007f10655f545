"""The robot taken out of the frames: erasing from masks, masks from real rendering, the CLI."""
import dataclasses
import numpy as np
import pytest

from sole_r1_ros import labelled
from sole_r1_ros.camera.robot_eraser import erase_episode, FILL, grow_mask, RobotEraser
from sole_r1_ros.cli import main


def _frame(color, size=6):
    return np.full((size, size, 3), color, dtype=np.uint8)


def test_a_fixed_camera_remembers_the_background_the_robot_covers():
    eraser = RobotEraser(fixed_camera=True, grow=0)
    first = _frame(10)
    first[0:2, 0:2] = 200  # the robot, in the top-left corner
    mask = np.zeros((6, 6), dtype=bool)
    mask[0:2, 0:2] = True
    out = eraser(first, mask)
    assert (out[0:2, 0:2] == FILL).all()  # never seen free: gray
    assert (out[2:, 2:] == 10).all()
    # The robot moves right: the corner shows the table, the new place keeps the old colour.
    second = _frame(20)
    second[0:2, 2:4] = 200
    moved = np.zeros((6, 6), dtype=bool)
    moved[0:2, 2:4] = True
    out = eraser(second, moved)
    assert (out[0:2, 0:2] == 20).all()
    assert (out[0:2, 2:4] == 10).all()  # last seen free in the first frame
    assert (out != 200).all()
    eraser.reset()
    assert (eraser(second, moved)[0:2, 2:4] == FILL).all()


def test_a_moving_camera_grays_the_robot_and_masks_grow():
    frame = _frame(50)
    mask = np.zeros((6, 6, 3), dtype=np.uint8)  # a mask image, read by its first channel
    mask[3, 3] = 255
    out = RobotEraser(fixed_camera=False, grow=1)(frame, mask)
    assert (out[2:5, 2:5] == FILL).all() and (out[0:2] == 50).all()
    assert grow_mask(mask[..., 0] > 0, 2).sum() == 25
    assert grow_mask(mask[..., 0] > 0, 0).sum() == 1
    np.testing.assert_array_equal(frame, _frame(50))  # the input is not touched


def test_bad_input_is_refused_clearly():
    eraser = RobotEraser(fixed_camera=True)
    with pytest.raises(ValueError, match='does not match'):
        eraser(_frame(0), np.zeros((5, 6), dtype=bool))
    with pytest.raises(ValueError, match='uint8'):
        eraser(np.zeros((6, 6, 3), dtype=np.float32), np.zeros((6, 6), dtype=bool))
    eraser(_frame(0), np.zeros((6, 6), dtype=bool))
    # a camera restarted at another size mid-episode: the background starts again (it
    # raised, and every later frame of the episode was thrown away)
    robot = np.zeros((8, 8), dtype=bool)
    robot[:4] = True
    erased = eraser(_frame(7, size=8), robot)
    assert erased.shape == (8, 8, 3) and (erased[5:] == 7).all()   # the mask grows 1 px
    assert (erased[:4] == 128).all()                    # not yet seen: the fill
    with pytest.raises(ValueError, match='2 frames but 1'):
        erase_episode(np.stack([_frame(0)] * 2), np.zeros((1, 6, 6), dtype=bool), True)
    with pytest.raises(ValueError, match='fill'):
        RobotEraser(fixed_camera=True, fill=300)


def test_the_mask_covers_the_rendered_arm():
    pytest.importorskip('metaworld')
    from sole_r1_ros.sim import MetaWorldRobot, SimConfig
    from sole_r1_ros.sim.rendering import CameraRig

    def first_frames(masks):
        with MetaWorldRobot(SimConfig(task='door-close-v3', image_width=96, image_height=96),
                            robot_masks=masks) as robot:
            observation = robot.reset(seed=0)
            return observation.external, observation.wrist, robot.model

    picture, _, model = first_frames(False)
    mask, wrist_mask, _ = first_frames(True)
    assert set(np.unique(mask)) == {0, 255} and (mask[..., 0] == mask[..., 2]).all()
    robot = mask[..., 0] > 0
    assert 0.05 < robot.mean() < 0.6
    # The Sawyer is red: nearly every clearly red pixel of the picture is inside the mask,
    # and the mask is mostly red pixels.
    rgb = picture.astype(int)
    red = (rgb[..., 0] - rgb[..., 1] > 60) & (rgb[..., 0] - rgb[..., 2] > 60)
    assert red.sum() > 100
    assert (red & grow_mask(robot, 1)).sum() / red.sum() > 0.97
    assert (red & robot).sum() / robot.sum() > 0.5
    assert wrist_mask[..., 0].any()  # the fingers are in the wrist camera's view
    with pytest.raises(ValueError, match='no body'):
        CameraRig(model, ['corner4'], 32, 32, mask_body='no-such-body')


@pytest.fixture(scope='module')
def drawer_and_masks(tmp_path_factory):
    pytest.importorskip('metaworld')
    root = tmp_path_factory.mktemp('erase')
    common = ['synth', '--tasks', 'drawer-close-v3', '--episodes', '2', '--max-steps', '40',
              '--workers', '1']
    assert main(common + ['--out', str(root / 'pictures')]) == 0
    assert main(common + ['--robot-masks', '--out', str(root / 'masks')]) == 0
    return root


def test_the_cli_erases_the_robot_from_a_dataset(drawer_and_masks, capsys):
    root = drawer_and_masks
    out = str(root / 'erased')
    assert main(['synth', '--erase-robot-of', str(root / 'pictures'), '--masks',
                 str(root / 'masks'), '--out', out]) == 0
    assert '2 episodes written now, 2 in' in capsys.readouterr().out
    pictures = labelled.load_episodes(str(root / 'pictures'))
    masks = labelled.load_episodes(str(root / 'masks'))
    erased = labelled.load_episodes(out)
    assert len(pictures) == len(masks) == len(erased) == 2
    for picture, mask, episode in zip(pictures, masks, erased):
        assert episode.episode_id == picture.episode_id
        assert (episode.goal, episode.split, episode.behaviour) == (
            picture.goal, picture.split, picture.behaviour)
        np.testing.assert_allclose(episode.progress, picture.progress)
        assert episode.meta['robot_erased'] is True
        np.testing.assert_array_equal(episode.extras['ee_position'],
                                      picture.extras['ee_position'])
        for view in ('external', 'wrist'):
            before, after = np.stack(getattr(picture, view)), np.stack(getattr(episode, view))
            robot = np.stack(getattr(mask, view))[..., 0] > 0
            # the gripper fills part of every wrist frame; the fixed camera sees the arm
            assert robot.any(axis=(1, 2)).all() if view == 'wrist' else robot.any()
            # Off the robot nothing changed (outside its grown outline); on it, no arm red.
            free = ~np.stack([grow_mask(m, 1) for m in robot])
            np.testing.assert_array_equal(after[free], before[free])
            rgb = after.astype(int)
            red = (rgb[..., 0] - rgb[..., 1] > 60) & (rgb[..., 0] - rgb[..., 2] > 60)
            assert red.sum() < 0.002 * red.size


def test_the_cli_refuses_masks_of_other_episodes(drawer_and_masks, tmp_path, capsys):
    root = drawer_and_masks
    others = str(tmp_path / 'other_masks')
    assert main(['synth', '--tasks', 'drawer-close-v3', '--episodes', '2', '--max-steps', '30',
                 '--workers', '1', '--robot-masks', '--out', others]) == 0
    capsys.readouterr()
    assert main(['synth', '--erase-robot-of', str(root / 'pictures'), '--masks', others,
                 '--out', str(tmp_path / 'x')]) != 0
    assert 'robot masks' in capsys.readouterr().err
    assert main(['synth', '--erase-robot-of', str(root / 'pictures'), '--tasks', 'reach-v3',
                 '--masks', str(root / 'masks'), '--out', str(tmp_path / 'y')]) != 0
    assert 'no episode of reach-v3' in capsys.readouterr().err
    assert main(['synth', '--erase-robot-of', str(root / 'pictures'), '--masks',
                 str(root / 'pictures'), '--out', str(tmp_path / 'v')]) != 0
    assert 'not a --robot-masks folder' in capsys.readouterr().err
    assert main(['synth', '--erase-robot-of', str(root / 'pictures'),
                 '--out', str(tmp_path / 'z')]) != 0
    assert '--masks' in capsys.readouterr().err
    assert main(['synth', '--undo-of', str(root / 'pictures'), '--robot-masks',
                 '--out', str(tmp_path / 'w')]) != 0
    assert '--robot-masks goes with' in capsys.readouterr().err


def test_object_motion_masks_pair_with_its_pictures(tmp_path):
    pytest.importorskip('metaworld')
    from sole_r1_ros.synth.erase import write_erased_episodes
    from sole_r1_ros.synth.object_motion import generate_object_motion

    pictures, masks = str(tmp_path / 'pictures'), str(tmp_path / 'masks')
    assert generate_object_motion(pictures, ['push-v3'], directions=['left']) == 4
    assert generate_object_motion(masks, ['push-v3'], directions=['left'],
                                  robot_masks=True) == 4
    loaded = labelled.load_episodes(pictures), labelled.load_episodes(masks)
    assert len(loaded[0]) == len(loaded[1]) == 4
    for picture, mask in zip(*loaded):
        assert mask.episode_id == picture.episode_id
        np.testing.assert_allclose(mask.progress, picture.progress)
        assert set(np.unique(mask.external)) <= {0, 255} and mask.wrist.any()
    assert write_erased_episodes(pictures, str(tmp_path / 'erased'), masks=masks) == 4


def test_the_ghosts_of_a_mask_folder_are_masks(tmp_path):
    pytest.importorskip('metaworld')
    from sole_r1_ros.synth.generate import generate, SynthConfig
    from sole_r1_ros.synth.ghost import write_ghost_episodes

    masks = str(tmp_path / 'masks')
    generate(SynthConfig(tasks=('drawer-close-v3',), episodes_per_task=1, val_per_block=0,
                         max_steps=150, robot_masks=True), masks)
    assert write_ghost_episodes(masks, str(tmp_path / 'ghosts')) == 1
    source, = labelled.load_episodes(masks)
    ghost, = labelled.load_episodes(str(tmp_path / 'ghosts'))
    assert ghost.num_frames == source.num_frames
    assert set(np.unique(ghost.external)) == {0, 255}
    # The same arm motion, so nearly the same masks (the drawer no longer hides the hand).
    overlap = (np.stack(ghost.external) == np.stack(source.external)).mean()
    assert overlap > 0.97


def test_a_frame_waits_for_the_mask_of_its_stamp_and_one_without_is_dropped():
    from sole_r1_ros.camera.mask_join import MaskJoin

    join = MaskJoin(buffer=3)
    assert join.add_frame(10, 'f10') == [] and join.add_frame(20, 'f20') == []
    assert join.add_mask(10, 'm10') == [(10, 'f10', 'm10')]
    assert join.add_mask(30, 'm30') == [] and join.dropped == 1  # f20's mask will not come
    assert join.add_frame(30, 'f30') == [(30, 'f30', 'm30')]
    assert join.add_mask(40, 'm40') == [] and join.add_frame(40, 'f40') == [(40, 'f40', 'm40')]
    for stamp in (50, 60, 70, 80):  # no masks at all: frames drop as the buffer overflows
        assert join.add_frame(stamp, f'f{stamp}') == []
    assert join.dropped == 2
    assert join.add_mask(60, 'm60') == [(60, 'f60', 'm60')] and join.dropped == 2
    # a 60 Hz camera whose masks come 10 frames (167 ms) late: all joined within 0.5 s
    join = MaskJoin()
    joined = []
    for index in range(60):
        joined += join.add_frame(index * 16_666_667, index)
        if index >= 10:
            joined += join.add_mask((index - 10) * 16_666_667, f'm{index - 10}')
    assert len(joined) == 50 and join.dropped == 0
    assert round(join.mask_lag_ns / 1e6) == 167
    with pytest.raises(ValueError, match='buffer'):
        MaskJoin(buffer=0)


def test_the_robot_renders_its_masks_beside_the_pictures():
    """``render_robot_masks`` gives, step by step, the masks a mask robot renders as images."""
    pytest.importorskip('metaworld')
    from sole_r1_ros.sim import MetaWorldRobot, SimConfig

    config = SimConfig(task='drawer-close-v3', image_width=48, image_height=48)
    with MetaWorldRobot(config) as robot, MetaWorldRobot(config, robot_masks=True) as masks:
        with pytest.raises(RuntimeError, match='reset'):
            robot.render_robot_masks()
        pictures, mask_images = robot.reset(seed=3), masks.reset(seed=3)
        for step in range(4):
            beside = robot.render_robot_masks()
            assert len(beside) == 2 and all(m.dtype == np.uint8 and m.ndim == 2 for m in beside)
            np.testing.assert_array_equal(beside[0], mask_images.external[..., 0])
            np.testing.assert_array_equal(beside[1], mask_images.wrist[..., 0])
            assert beside[0].any() and not (pictures.external == mask_images.external).all()
            action = [0.5, -0.3, 0.2, 1.0]
            pictures, mask_images = robot.step(action)[0], masks.step(action)[0]


def _goal_encoder():
    from sole_r1_ros.compact.goals import EMBEDDING_DIM, GoalEncoder
    from sole_r1_ros.sim.tasks import TASK_GOALS
    from sole_r1_ros.synth import EVAL_PARAPHRASES, TRAIN_PARAPHRASES

    texts = [*TASK_GOALS.values(), *TRAIN_PARAPHRASES['drawer-close-v3'],
             *EVAL_PARAPHRASES.get('drawer-close-v3', ())]
    vectors = np.random.default_rng(0).normal(size=(len(texts), EMBEDDING_DIM))
    return GoalEncoder({t: (v / np.linalg.norm(v)).astype(np.float32)
                        for t, v in zip(texts, vectors)})


def test_a_checkpoint_says_it_reads_erased_frames_and_kinds_never_mix(
        drawer_and_masks, tmp_path):
    pytest.importorskip('torch')
    from sole_r1_ros.compact.model import CompactConfig
    from sole_r1_ros.compact.train import train, TrainConfig
    from sole_r1_ros.reward import make_backend, RewardConfig, RewardEngine

    root = drawer_and_masks
    erased = str(tmp_path / 'erased')
    assert main(['synth', '--erase-robot-of', str(root / 'pictures'), '--masks',
                 str(root / 'masks'), '--out', erased]) == 0
    tiny = CompactConfig(image_size=16, channels=(4, 4, 4, 4), feature_dim=8, goal_features=8,
                         hidden_dim=8)
    config = TrainConfig(minutes=1.0, epochs=1, batch_size=8, eval_every_s=1e9, model=tiny)
    with pytest.raises(ValueError, match='robot erased and 2 do not'):
        train([str(root / 'pictures'), erased], str(tmp_path / 'mixed.pt'), config,
              encoder=_goal_encoder())
    out = str(tmp_path / 'erased.pt')
    info = train(erased, out, config, encoder=_goal_encoder())
    assert info['robot_erased'] is True and info['wrist_view'] is True
    assert train(str(root / 'pictures'), str(tmp_path / 'pictures.pt'), config,
                 encoder=_goal_encoder())['robot_erased'] is False
    engine = RewardEngine(make_backend(RewardConfig(backend='compact', model=out)),
                          RewardConfig(backend='compact', model=out))
    assert engine.robot_erased is True
    from sole_r1_ros.evaluation.reward_eval import score_with_engine
    with pytest.raises(ValueError, match='have it in view'):
        score_with_engine(engine, labelled.load_episodes(str(root / 'pictures')))
    assert len(score_with_engine(engine, labelled.load_episodes(erased))) == 2
    engine.close()
    with pytest.raises(ValueError, match='trained on frames with the robot erased.*'
                       "--init shipped picks the package's own file of the data's kind"):
        train(str(root / 'pictures'), str(tmp_path / 'tuned.pt'),
              TrainConfig(minutes=1.0, epochs=1, batch_size=8, eval_every_s=1e9, init=out),
              encoder=_goal_encoder())
    # 'shipped' is the package's file of the data's kind: the erased one for erased frames.
    tuned = train(erased, str(tmp_path / 'tuned.pt'),
                  TrainConfig(minutes=1.0, epochs=1, batch_size=8, eval_every_s=1e9,
                              init='shipped'), encoder=_goal_encoder())
    assert tuned['robot_erased'] is True
    assert tuned['init']['checkpoint'].endswith('compact_progress_erased.pt')
    assert tuned['init']['robot_erased'] is True
    # A learning run turns erasing on in simulation, and asks a real robot for its masks.
    from sole_r1_ros.commands.learn import _match_robot_erasing

    params = {'reward_node': {'backend': 'compact', 'model': out}, 'sim_robot_node': {}}
    _match_robot_erasing(params)
    assert params['camera_node'] == {'erase_robot': True, 'use_wrist': False}
    assert params['sim_robot_node']['publish_robot_masks']
    params = {'reward_node': {'backend': 'compact', 'model': out}, 'sim_robot_node': {},
              'camera_node': {'use_wrist': True}}
    _match_robot_erasing(params, {'camera_node.use_wrist'})
    assert params['camera_node']['use_wrist']
    with pytest.raises(ValueError, match='self-filter'):
        _match_robot_erasing({'reward_node': {'backend': 'compact', 'model': out}})
    params = {'reward_node': {'backend': 'compact', 'model': out},
              'camera_node': {'erase_robot': True}}
    _match_robot_erasing(params)                     # a real robot that erases: external only
    assert params['camera_node'] == {'erase_robot': True, 'use_wrist': False}
    with pytest.raises(ValueError, match='reads pictures'):
        _match_robot_erasing({'reward_node': {'backend': 'compact',
                                              'model': str(tmp_path / 'pictures.pt')},
                              'camera_node': {'erase_robot': True}})
    plain = {'reward_node': {'backend': 'openai'}}
    _match_robot_erasing(plain)
    assert plain['camera_node'] == {}


def test_a_learning_run_reads_its_checkpoint_kind_without_holding_torch(tmp_path):
    """sole-r1 learn's process lives as long as the run: it reads the flag without torch.

    From the file's pickle; a file that cannot be read so is loaded in a child, whose loader
    says what is wrong with it.
    """
    import subprocess
    import sys

    code = ('import sys\n'
            'from sole_r1_ros.commands.learn import _match_robot_erasing\n'
            "params = {'reward_node': {'backend': 'compact'}}\n"
            '_match_robot_erasing(params)\n'
            "assert params['camera_node'] == {}, params\n"
            "assert 'torch' not in sys.modules, 'torch imported for one flag'\n")
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    from sole_r1_ros.commands.learn import _match_robot_erasing

    (tmp_path / 'notes.pt').write_text('not a checkpoint')
    for path, reason in ((tmp_path / 'none.pt', 'FileNotFoundError: no compact'),
                         (tmp_path / 'notes.pt', 'CheckpointError: .*notes.pt is not a compact')):
        with pytest.raises(ValueError, match=f'the reward model {path}: {reason}'):
            _match_robot_erasing({'reward_node': {'backend': 'compact', 'model': str(path)}})


def test_score_bag_erases_with_the_recorded_masks(drawer_and_masks, tmp_path, capsys):
    """An erased file scores a recorded bag's erased frames; --labelled-out writes them."""
    pytest.importorskip('rosbags')
    pytest.importorskip('torch')
    import json

    from sole_r1_ros.compact.model import CompactConfig
    from sole_r1_ros.compact.train import train, TrainConfig
    from sole_r1_ros.recording import BagWriter, make_typestore

    root = drawer_and_masks
    erased = str(tmp_path / 'erased')
    assert main(['synth', '--erase-robot-of', str(root / 'pictures'), '--masks',
                 str(root / 'masks'), '--out', erased]) == 0
    model = str(tmp_path / 'erased.pt')
    train(erased, model, TrainConfig(minutes=1.0, epochs=1, batch_size=8, eval_every_s=1e9,
                                     model=CompactConfig(image_size=16, channels=(4, 4, 4, 4),
                                                         feature_dim=8, goal_features=8,
                                                         hidden_dim=8)),
          encoder=_goal_encoder())
    picture, = labelled.load_episodes(str(root / 'pictures'))[:1]
    mask, = labelled.load_episodes(str(root / 'masks'))[:1]
    typestore, bag = make_typestore(), str(tmp_path / 'bag')
    types = typestore.types
    writer = BagWriter(bag)
    for index in range(picture.num_frames):
        for topic, frame, encoding in (
                ('camera/external/image_raw', picture.external[index], 'rgb8'),
                ('camera/wrist/image_raw', picture.wrist[index], 'rgb8'),
                ('camera/external/robot_mask', mask.external[index][..., 0], 'mono8'),
                ('camera/wrist/robot_mask', mask.wrist[index][..., 0], 'mono8')):
            frame = np.ascontiguousarray(frame)
            header = types['std_msgs/msg/Header'](
                stamp=types['builtin_interfaces/msg/Time'](sec=index + 1, nanosec=0),
                frame_id='cam')
            msg = types['sensor_msgs/msg/Image'](
                header=header, height=frame.shape[0], width=frame.shape[1], encoding=encoding,
                is_bigendian=0, step=frame.strides[0], data=frame.reshape(-1))
            writer.write('/' + topic, 'sensor_msgs/msg/Image', (index + 1) * 10**9,
                         bytes(typestore.serialize_cdr(msg, 'sensor_msgs/msg/Image')))
    writer.close()
    common = ['score-bag', bag, '--goal', 'close the drawer', '--backend', 'compact',
              '--model', model, '--episode-topic', '']
    assert main(common + ['--out', str(tmp_path / 'pictures.json')]) != 0
    assert 'pass --erase-robot' in capsys.readouterr().err
    out = tmp_path / 'scores.json'
    assert main(common + ['--erase-robot', '--out', str(out),
                          '--labelled-out', str(tmp_path / 'distil')]) == 0
    assert json.loads(out.read_text())['scored_frames'] == 'robot erased'
    written, = labelled.load_episodes(str(tmp_path / 'distil'))
    assert written.meta['robot_erased'] is True
    expected, = [e for e in labelled.load_episodes(erased) if e.episode_id == picture.episode_id]
    np.testing.assert_array_equal(np.stack(written.external), np.stack(expected.external))
    np.testing.assert_array_equal(np.stack(written.wrist), np.stack(expected.wrist))
    # With a folder for the erased frames, --labelled-out keeps the pictures.
    assert main(common + ['--erase-robot', '--out', str(out), '--labelled-out',
                          str(tmp_path / 'both_pictures'), '--erased-labelled-out',
                          str(tmp_path / 'both_erased')]) == 0
    kept, = labelled.load_episodes(str(tmp_path / 'both_pictures'))
    np.testing.assert_array_equal(np.stack(kept.external), np.stack(picture.external))
    beside, = labelled.load_episodes(str(tmp_path / 'both_erased'))
    np.testing.assert_array_equal(np.stack(beside.wrist), np.stack(expected.wrist))
    # A pair scores the pictures and the external view erased beside them.
    pictures_pt = _tiny_train(str(root / 'pictures'), str(tmp_path / 'pictures.pt'))
    pair = ['score-bag', bag, '--goal', 'close the drawer', '--backend', 'compact', '--model',
            pictures_pt, '--erased-model', model, '--episode-topic', '']
    assert main(pair + ['--out', str(tmp_path / 'no_masks.json')]) != 0
    assert 'pass --erase-robot' in capsys.readouterr().err
    assert main(pair + ['--erase-robot', '--out', str(out)]) == 0
    report = json.loads(out.read_text())
    assert report['scored_frames'] == 'pictures, and the external view erased beside them'
    assert report['model_id'] == 'compact:pictures+erased'
    # Distilling a pair takes two folders of the same episodes and labels: the pictures and
    # both views erased.
    assert main(pair + ['--out', str(out), '--erased-labelled-out', str(tmp_path / 'no')]) != 0
    assert '--erased-labelled-out writes the frames with the robot erased: pass --erase-robot' \
        in capsys.readouterr().err
    assert main(pair + ['--erase-robot', '--out', str(out), '--labelled-out',
                        str(tmp_path / 'pair_pictures'), '--erased-labelled-out',
                        str(tmp_path / 'pair_erased')]) == 0
    as_pictures, = labelled.load_episodes(str(tmp_path / 'pair_pictures'))
    as_erased, = labelled.load_episodes(str(tmp_path / 'pair_erased'))
    assert 'robot_erased' not in as_pictures.meta and as_erased.meta['robot_erased'] is True
    np.testing.assert_array_equal(np.stack(as_pictures.external), np.stack(picture.external))
    np.testing.assert_array_equal(np.stack(as_pictures.wrist), np.stack(picture.wrist))
    np.testing.assert_array_equal(np.stack(as_erased.external), np.stack(expected.external))
    np.testing.assert_array_equal(np.stack(as_erased.wrist), np.stack(expected.wrist))
    assert as_pictures.progress == as_erased.progress
    assert as_pictures.progress[-1] == report['episodes'][0]['progress'][-1]
    # A pair's --labelled-out alone writes the pictures, never a half-erased episode.
    assert main(pair + ['--erase-robot', '--out', str(out), '--labelled-out',
                        str(tmp_path / 'pair_alone')]) == 0
    alone, = labelled.load_episodes(str(tmp_path / 'pair_alone'))
    np.testing.assert_array_equal(np.stack(alone.external), np.stack(picture.external))


def _tiny_train(data: str, out: str) -> str:
    from sole_r1_ros.compact.model import CompactConfig
    from sole_r1_ros.compact.train import train, TrainConfig

    tiny = CompactConfig(image_size=16, channels=(4, 4, 4, 4), feature_dim=8, goal_features=8,
                         hidden_dim=8)
    train(data, out, TrainConfig(minutes=1.0, epochs=1, batch_size=8, eval_every_s=1e9,
                                 model=tiny), encoder=_goal_encoder())
    return out


def test_a_pair_answers_the_mean_of_the_pictures_and_the_erased_external_view(
        drawer_and_masks, tmp_path, monkeypatch):
    """A compact pair answers the mean of its two files, each asked as it was trained.

    Or the smaller of the two, with ``pair_join='min'``.

    It refuses queries without the erased view.
    """
    pytest.importorskip('torch')
    from sole_r1_ros.compact.predictor import CompactPredictor
    from sole_r1_ros.compact.tiles import query_views
    from sole_r1_ros.evaluation.reward_eval import score_with_engine
    from sole_r1_ros.reward import EpisodeTracker, make_backend, RewardConfig, RewardEngine

    root = drawer_and_masks
    erased_dir = str(tmp_path / 'erased')
    assert main(['synth', '--erase-robot-of', str(root / 'pictures'), '--masks',
                 str(root / 'masks'), '--out', erased_dir]) == 0
    pictures_pt = _tiny_train(str(root / 'pictures'), str(tmp_path / 'pictures.pt'))
    erased_pt = _tiny_train(erased_dir, str(tmp_path / 'erased.pt'))
    with pytest.raises(ValueError, match='a compact pair is a file trained on pictures'):
        CompactPredictor.load(pictures_pt, erased=pictures_pt)
    with pytest.raises(ValueError, match='a compact pair is a file trained on pictures'):
        CompactPredictor.load(erased_pt, erased=erased_pt)
    with pytest.raises(ValueError, match='pairs compact checkpoints'):
        RewardConfig(backend='openai', erased_model=erased_pt)

    config = RewardConfig(backend='compact', model=pictures_pt, erased_model=erased_pt)
    engine = RewardEngine(make_backend(config), config)
    assert engine.erased_beside and not engine.robot_erased
    assert engine.model_id == 'compact:pictures+erased'
    picture = labelled.load_episodes(str(root / 'pictures'))[0]
    erased = labelled.load_episodes(erased_dir)[0]
    tracker = EpisodeTracker('ep', picture.goal)
    tracker.add_frame(picture.external[0], picture.wrist[0], erased_external=erased.external[0])
    with pytest.raises(ValueError, match='erased external frame at every step or at none'):
        tracker.add_frame(picture.external[5], picture.wrist[5], step=5)
    tracker.add_frame(picture.external[9], picture.wrist[9], step=9,
                      erased_external=erased.external[9])
    query = tracker.make_query()
    [result] = engine.score([query])
    assert result.valid, result.error
    # The mean of the two files, each asked as it was trained.
    alone, member = CompactPredictor.load(pictures_pt), CompactPredictor.load(erased_pt)
    own = alone.predict(query_views(query, 16)[None], [query.goal], [0], [True])[0]
    views = query_views(query, 16, erased_external=True)
    assert not views[1].any()   # the erased member reads the external view only
    other = member.predict(views[None], [query.goal], [0], [False])[0]
    assert result.progress == int(round((own + other) / 2))
    # Joined by the smaller answer instead (pair_join='min'), with the pictures' file made to
    # answer 30 points higher (its output bias raised), so the mean and the smaller differ.
    import torch
    from sole_r1_ros.compact.model import load_checkpoint, save_checkpoint

    model, cache, info = load_checkpoint(pictures_pt)
    with torch.no_grad():
        model.head[-1].bias += 0.3
    raised_pt = str(tmp_path / 'raised.pt')
    save_checkpoint(raised_pt, model, cache, info)
    raised = CompactPredictor.load(raised_pt).predict(
        query_views(query, 16)[None], [query.goal], [0], [True])[0]
    assert raised - other > 20
    from sole_r1_ros.compact.predictor import JOINS
    from sole_r1_ros.configuration import specs
    # One set of joins: the config's choices are the predictor's (which imports torch).
    assert set({s.name: s for s in specs(RewardConfig)}['pair_join'].choices) == set(JOINS)
    for join, expected in (('mean', (raised + other) / 2), ('min', other)):
        joined = RewardConfig(backend='compact', model=raised_pt, erased_model=erased_pt,
                              pair_join=join)
        joined_engine = RewardEngine(make_backend(joined), joined)
        [answer] = joined_engine.score([query])
        assert answer.progress == int(round(expected)), join
        joined_engine.close()
    assert joined_engine.model_id == 'compact:raised+erased:min'
    # Each network is quoted its own previous answer, not the pair's, when the query quotes
    # the pair's last answer; a query quoting another value has both quoted that.
    mean_config = RewardConfig(backend='compact', model=raised_pt, erased_model=erased_pt)
    mean_engine = RewardEngine(make_backend(mean_config), mean_config)
    quoted_to = []   # (which network, the previous answers it was asked with), call by call
    predict = CompactPredictor.predict

    def recording(net, views, goals, previous, has_wrist):
        quoted_to.append(('erased' if net.robot_erased else 'pictures', list(previous)))
        return predict(net, views, goals, previous, has_wrist)
    monkeypatch.setattr(CompactPredictor, 'predict', recording)
    chain = EpisodeTracker('chain', picture.goal)
    for step in (0, 9):
        chain.add_frame(picture.external[step], picture.wrist[step], step=step,
                        erased_external=erased.external[step])
    [first] = mean_engine.score([chain.make_query()])
    assert chain.record(first) and first.progress == int(round((raised + other) / 2))
    chain.add_frame(picture.external[19], picture.wrist[19], step=19,
                    erased_external=erased.external[19])
    second_query = chain.make_query()
    assert second_query.previous_progress == first.progress
    [second] = mean_engine.score([second_query])
    assert quoted_to[-2:] == [('pictures', [int(round(raised))]),
                              ('erased', [int(round(other))])]
    assert int(round(raised)) != second_query.previous_progress != int(round(other))
    pictures_again = CompactPredictor.load(raised_pt).predict(
        query_views(second_query, 16)[None], [picture.goal], [int(round(raised))], [True])[0]
    erased_again = member.predict(query_views(second_query, 16, erased_external=True)[None],
                                  [picture.goal], [int(round(other))], [False])[0]
    assert second.progress == int(round((pictures_again + erased_again) / 2))
    quoted = dataclasses.replace(second_query, episode_id='another', previous_progress=40)
    [third] = mean_engine.score([quoted])
    assert quoted_to[-2:] == [('pictures', [40]), ('erased', [40])]
    both_quoted = [net.predict(query_views(quoted, 16, erased_external=erased_view)[None],
                               [picture.goal], [40], [not erased_view])[0]
                   for net, erased_view in ((CompactPredictor.load(raised_pt), False),
                                            (member, True))]
    assert third.progress == int(round(sum(both_quoted) / 2))
    mean_engine.close()
    with pytest.raises(ValueError, match='erased_model is not set'):
        RewardConfig(backend='compact', pair_join='min')
    with pytest.raises(ValueError, match='pair_join'):
        RewardConfig(backend='compact', erased_model=erased_pt, pair_join='max')
    # Without the erased view: an error for that query, never a picture read as erased.
    bare = EpisodeTracker('bare', picture.goal)
    bare.add_frame(picture.external[0], picture.wrist[0])
    bare.add_frame(picture.external[9], picture.wrist[9], step=9)
    [failed] = engine.score([bare.make_query()])
    assert not failed.valid and 'erased_beside' in failed.error
    pictures = labelled.load_episodes(str(root / 'pictures'))
    with pytest.raises(ValueError, match='give the erased copies'):
        score_with_engine(engine, pictures)
    with pytest.raises(ValueError, match='no copy with the robot erased'):
        score_with_engine(engine, pictures, erased_copies=pictures)
    scores = score_with_engine(engine, pictures, erased_copies=labelled.load_episodes(erased_dir))
    assert len(scores) == 2 and all(len(s.predicted) == 10 for s in scores)
    engine.close()


def test_a_learning_run_with_a_pair_sends_the_erased_view_beside_the_pictures():
    from sole_r1_ros.commands.learn import _match_robot_erasing
    from sole_r1_ros.nodes.camera_node import CameraNodeConfig

    pair = {'backend': 'compact', 'model': '', 'erased_model': 'shipped'}
    params = {'reward_node': dict(pair), 'sim_robot_node': {}}
    _match_robot_erasing(params)
    assert params['camera_node'] == {'erase_robot': True, 'erased_beside': True}
    assert params['sim_robot_node']['publish_robot_masks']
    with pytest.raises(ValueError, match='camera/external/robot_mask'):
        _match_robot_erasing({'reward_node': dict(pair)})
    params = {'reward_node': dict(pair),
              'camera_node': {'erase_robot': True, 'erased_beside': True}}
    _match_robot_erasing(params)                     # a real robot that erases: as it was
    assert params == {'reward_node': pair,
                      'camera_node': {'erase_robot': True, 'erased_beside': True}}
    with pytest.raises(ValueError, match='must be true'):
        _match_robot_erasing({'reward_node': dict(pair), 'sim_robot_node': {},
                              'camera_node': {'erased_beside': False}})
    with pytest.raises(ValueError, match='erased_model is not set'):
        _match_robot_erasing({'reward_node': {'backend': 'openai'},
                              'camera_node': {'erase_robot': True, 'erased_beside': True}})
    with pytest.raises(ValueError, match='needs erase_robot'):
        CameraNodeConfig(erased_beside=True)


def test_a_0_1_mask_survives_the_shrink_to_a_tile_as_a_255_one_does():
    from sole_r1_ros.camera import shrink_to_tile
    from sole_r1_ros.camera.mask_join import with_mask_channel
    frame = np.zeros((720, 1280, 3), np.uint8)
    robot = np.zeros((720, 1280), bool)
    robot[:, 640] = True                          # a 1 px arm edge
    tiles = [shrink_to_tile(with_mask_channel(frame, robot.astype(np.uint8) * value), 384)
             for value in (1, 255)]
    assert (tiles[0][..., 3] > 0).sum() == (tiles[1][..., 3] > 0).sum() > 0
    with pytest.raises(ValueError, match='robot mask of 4x4 px'):
        with_mask_channel(frame, np.zeros((4, 4), np.uint8))

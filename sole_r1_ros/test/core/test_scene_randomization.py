"""Scene randomization changes how a real Meta-World scene looks, never what happens in it."""
import json
import os

import numpy as np
import pytest

pytest.importorskip('metaworld')

from sole_r1_ros import labelled  # noqa: E402
from sole_r1_ros.sim import MetaWorldRobot, SimConfig  # noqa: E402
from sole_r1_ros.sim.randomization import SceneRandomization, SceneRandomizer  # noqa: E402
from sole_r1_ros.synth import generate, SynthConfig  # noqa: E402

CAMERAS = ('corner4', 'gripperPOV')
FIELDS = ('cam_pos', 'cam_quat', 'cam_fovy', 'light_pos', 'light_diffuse', 'geom_rgba',
          'mat_rgba')


@pytest.fixture(scope='module')
def robot():
    robot = MetaWorldRobot(SimConfig(task='push-v3', image_width=32, image_height=32))
    yield robot
    robot.close()


def _snapshot(model):
    return {name: np.array(getattr(model, name), copy=True) for name in FIELDS}


def test_a_draw_stays_within_its_ranges_and_never_accumulates(robot):
    model = robot.model
    original = _snapshot(model)
    settings = SceneRandomization()
    randomizer = SceneRandomizer(model, CAMERAS)
    camera = model.camera('corner4').id
    rng = np.random.default_rng(0)
    try:
        for _ in range(20):  # twenty draws in a row: each starts from the original
            randomizer.apply(rng)
            shift = np.abs(model.cam_pos[camera] - original['cam_pos'][camera])
            assert 0 < shift.max() <= settings.camera_shift_m + 1e-12
            assert abs(model.cam_fovy[camera] - original['cam_fovy'][camera]) <= 3.0 + 1e-9
            assert np.linalg.norm(model.cam_quat[camera]) == pytest.approx(1.0)
            # the rotation between the drawn and the original orientation is at most 3 degrees
            dot = abs(float(np.dot(model.cam_quat[camera], original['cam_quat'][camera])))
            assert np.degrees(2 * np.arccos(min(1.0, dot))) <= settings.camera_rotation_deg + 1e-6
            ratio = model.light_diffuse / original['light_diffuse']
            assert np.all((ratio >= 1 - settings.light_scale - 1e-9)
                          & (ratio <= 1 + settings.light_scale + 1e-9))
            rgb = model.geom_rgba[:, :3]
            assert np.all((rgb >= 0) & (rgb <= 1))
            assert not np.array_equal(rgb, original['geom_rgba'][:, :3])
            np.testing.assert_array_equal(model.geom_rgba[:, 3], original['geom_rgba'][:, 3])
    finally:
        randomizer.restore()
    for name, value in original.items():
        np.testing.assert_array_equal(getattr(model, name), value, err_msg=name)


def test_the_same_seed_gives_the_same_look_and_strength_zero_changes_nothing(robot):
    model = robot.model
    original = _snapshot(model)
    randomizer = SceneRandomizer(model, CAMERAS)
    try:
        randomizer.apply(np.random.default_rng(7))
        first = _snapshot(model)
        randomizer.apply(np.random.default_rng(8))
        assert not np.array_equal(model.cam_pos, first['cam_pos'])
        randomizer.apply(np.random.default_rng(7))
        for name, value in first.items():
            np.testing.assert_array_equal(getattr(model, name), value, err_msg=name)
        SceneRandomizer(model, CAMERAS, strength=0.0).apply(np.random.default_rng(7))
        for name, value in first.items():  # strength 0 leaves whatever is there
            np.testing.assert_array_equal(getattr(model, name), value, err_msg=name)
    finally:
        randomizer.restore()
    for name, value in original.items():
        np.testing.assert_array_equal(getattr(model, name), value, err_msg=name)


def _optical_axis(quat):
    """The world direction a MuJoCo camera looks along (its -z axis)."""
    w, x, y, z = quat
    return -np.array([2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y)])


def test_an_orbit_turns_the_fixed_camera_about_the_table_and_leaves_the_wrist_camera(robot):
    model = robot.model
    original = _snapshot(model)
    settings = SceneRandomization(camera_orbit_deg=80.0)
    pivot = np.asarray(settings.orbit_pivot_m)
    fixed, wrist = model.camera('corner4').id, model.camera('gripperPOV').id
    randomizer = SceneRandomizer(model, CAMERAS, strength=0.0, settings=settings)
    start = original['cam_pos'][fixed] - pivot
    turns = []
    try:
        for seed in range(12):
            randomizer.apply(np.random.default_rng(seed))
            moved = model.cam_pos[fixed] - pivot
            # the same height and distance from the pivot's vertical, turned about it
            assert moved[2] == pytest.approx(start[2])
            assert np.linalg.norm(moved[:2]) == pytest.approx(np.linalg.norm(start[:2]))
            turn = np.degrees(np.arctan2(moved[1], moved[0]) - np.arctan2(start[1], start[0]))
            turn = (turn + 180) % 360 - 180
            assert abs(turn) <= 80.0 + 1e-9
            turns.append(turn)
            # and its view turned with it: the optical axis turned by the same angle
            before, after = _optical_axis(original['cam_quat'][fixed]), _optical_axis(
                model.cam_quat[fixed])
            assert after[2] == pytest.approx(before[2])
            axis_turn = np.degrees(np.arctan2(after[1], after[0]) - np.arctan2(before[1],
                                                                               before[0]))
            assert (axis_turn - turn + 180) % 360 - 180 == pytest.approx(0.0, abs=1e-6)
            # the wrist camera rides on the gripper: never orbited
            np.testing.assert_array_equal(model.cam_pos[wrist], original['cam_pos'][wrist])
            np.testing.assert_array_equal(model.cam_quat[wrist], original['cam_quat'][wrist])
            # strength 0: nothing but the orbit
            np.testing.assert_array_equal(model.geom_rgba, original['geom_rgba'])
    finally:
        randomizer.restore()
    assert max(turns) > 30 and min(turns) < -30  # both sides of the table are drawn
    for name, value in original.items():
        np.testing.assert_array_equal(getattr(model, name), value, err_msg=name)


def test_bad_settings_are_refused(robot):
    with pytest.raises(ValueError, match='not in the model'):
        SceneRandomizer(robot.model, ['no_such_camera'])
    with pytest.raises(ValueError, match='strength'):
        SceneRandomizer(robot.model, CAMERAS, strength=-0.5)
    with pytest.raises(ValueError):
        SceneRandomization(light_scale=1.5)
    with pytest.raises(ValueError):
        SynthConfig(tasks=('reach-v3',), scene_randomization=3.0)
    with pytest.raises(ValueError):
        SynthConfig(tasks=('reach-v3',), camera_orbit_deg=-10.0)


def _dataset(root, strength, orbit=0.0):
    config = SynthConfig(tasks=('reach-v3',), episodes_per_task=2, image_size=24,
                         frame_stride=4, max_steps=40, scene_randomization=strength,
                         camera_orbit_deg=orbit)
    generate(config, root, workers=1)
    return labelled.load_episodes(root)


def test_randomized_episodes_look_different_and_keep_the_same_physics_and_labels(tmp_path):
    plain = _dataset(str(tmp_path / 'plain'), 0.0)
    varied = _dataset(str(tmp_path / 'varied'), 1.0)
    for a, b in zip(plain, varied):
        assert b.meta['scene_randomization'] == 1.0
        np.testing.assert_array_equal(a.extras['actions'], b.extras['actions'])
        np.testing.assert_array_equal(a.progress, b.progress)
        np.testing.assert_array_equal(a.extras['state'], b.extras['state'])
        assert b.external.reshape(len(b.external), -1).mean(axis=1).min() > 5  # not black
        # every frame looks different, by much more than a rounding error
        difference = np.abs(a.external.astype(int) - b.external.astype(int)).mean(axis=(1, 2, 3))
        assert difference.min() > 2.0
    # two episodes of the randomized set do not share one look
    first_frames = [e.external[0].astype(int) for e in varied]
    plain_first = [e.external[0].astype(int) for e in plain]
    assert (np.abs(first_frames[0] - first_frames[1]).mean()
            > np.abs(plain_first[0] - plain_first[1]).mean() + 1.0)


def test_a_dataset_keeps_its_randomization_strength_and_reads_older_headers(tmp_path):
    root = str(tmp_path / 'data')
    _dataset(root, 0.0)
    with pytest.raises(ValueError, match='other settings'):
        generate(SynthConfig(tasks=('reach-v3',), episodes_per_task=2, image_size=24,
                             frame_stride=4, max_steps=40, scene_randomization=1.0), root)
    # A header written before the field existed means no randomization.
    header_path = os.path.join(root, 'synth.json')
    with open(header_path, encoding='utf-8') as stream:
        header = json.load(stream)
    del header['config']['scene_randomization']
    with open(header_path, 'w', encoding='utf-8') as stream:
        json.dump(header, stream)
    assert len(generate(SynthConfig(tasks=('reach-v3',), episodes_per_task=2, image_size=24,
                                    frame_stride=4, max_steps=40), root)) == 2


def test_orbited_episodes_show_the_same_physics_from_another_side(tmp_path):
    plain = _dataset(str(tmp_path / 'plain'), 0.0)
    orbited = _dataset(str(tmp_path / 'orbited'), 0.0, orbit=90.0)
    turned = []  # the two episodes' turns are 1 and 65 degrees
    for a, b in zip(plain, orbited):
        assert b.meta['camera_orbit_deg'] == 90.0
        np.testing.assert_array_equal(a.progress, b.progress)
        np.testing.assert_array_equal(a.extras['state'], b.extras['state'])
        np.testing.assert_array_equal(a.wrist, b.wrist)  # the wrist camera is where it was
        turned.append(np.abs(a.external.astype(int) - b.external.astype(int)).mean())
    assert min(turned) > 0 and max(turned) > 5.0

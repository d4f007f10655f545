"""Tier 0: MetaWorldRobot with real MuJoCo physics and offscreen rendering (no ROS)."""
import gc
import threading

import numpy as np
import pytest

pytest.importorskip('metaworld')

from sole_r1_ros.sim import (  # noqa: E402
    command_from_pose, JOINT_NAMES, MetaWorldRobot, SimConfig)

_HEIGHT, _WIDTH = 48, 64


def _robot(**overrides) -> MetaWorldRobot:
    settings = dict(image_width=_WIDTH, image_height=_HEIGHT)
    settings.update(overrides)
    return MetaWorldRobot(SimConfig(**settings))


def _wood_fraction(image: np.ndarray) -> np.ndarray:
    """Per-pixel mask of the brown table top (red > green > blue, not the saturated red arm)."""
    r, g, b = (image[..., c].astype(int) for c in range(3))
    return (r - b > 25) & (g - b > 8) & (r - g > 8) & (r < 200)


def _cyan_fraction(image: np.ndarray) -> float:
    """Fraction of pixels with the colour of the Sawyer's cyan finger pad."""
    r, g, b = (image[..., c].astype(int) for c in range(3))
    return float(((g > 120) & (b > 120) & (r < 90)).mean())


@pytest.mark.parametrize('task, seed', [
    ('reach-v3', 7), ('lever-pull-v3', 0), ('pick-place-wall-v3', 1)])
def test_the_variations_are_mt1s_byte_for_byte(task, seed):
    """Drawn without the hand's physics steps (4x faster), they must stay MT1's own.

    lever-pull reads the objects' orientation and pick-place-wall the hand's position while a
    reset draws: the hand left out of place entirely failed on both.
    """
    import metaworld

    from sole_r1_ros.sim.variations import task_variations
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    fast = task_variations(task, seed)
    assert (np.random.get_state()[1] == before).all(), 'the global random state was changed'
    reference = metaworld.MT1(task, seed=seed).train_tasks
    assert [t.data for t in fast] == [t.data for t in reference]
    assert len({t.data for t in fast}) == 50


@pytest.fixture(scope='module')
def robot():
    """drawer-close-v3 with both cameras; each test resets it."""
    sim = _robot()
    yield sim
    sim.close()


class TestImages:

    def test_both_cameras_have_the_configured_size_and_are_not_black(self, robot):
        observation = robot.reset(seed=0)
        for image in (observation.external, observation.wrist):
            assert image.shape == (_HEIGHT, _WIDTH, 3) and image.dtype == np.uint8
            assert image.flags.c_contiguous and not image.flags.writeable
            assert image.mean() > 5, 'black frame'
        assert not np.array_equal(observation.external, observation.wrist)

    def test_external_view_is_upright(self, robot):
        # The corner cameras render upside down. Upright, the table top fills the lower half
        # and the grey room the upper half: the brown fraction is 0.36 to 0.58 higher below
        # the middle for corner4 on all 50 tasks, and just as much lower when upside down.
        image = robot.reset(seed=0).external
        wood = _wood_fraction(image)
        assert wood[_HEIGHT // 2:].mean() - wood[:_HEIGHT // 2].mean() > 0.2

    def test_goal_marker_is_hidden(self, robot):
        mujoco = pytest.importorskip('mujoco')
        observation = robot.reset(seed=0)
        hidden = mujoco.MjvOption()
        hidden.sitegroup[:] = 0
        renderer = mujoco.Renderer(robot.model, height=_HEIGHT, width=_WIDTH)
        try:
            # The robot's settings (shadows and reflections off), with and without sites.
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
            images = []
            for option in (mujoco.MjvOption(), hidden):
                renderer.update_scene(robot.data, robot.config.external_camera, option)
                images.append(renderer.render()[::-1, ::-1])
        finally:
            renderer.close()
        with_sites, without_sites = images
        np.testing.assert_array_equal(observation.external, without_sites)
        shown = np.abs(with_sites.astype(int) - without_sites.astype(int)).sum(-1) > 60
        assert shown.any(), 'the goal marker is out of view, so this test proves nothing'
        goal_rgb = robot.model.site_rgba[robot.model.site('goal').id][:3]
        channel = int(np.argmax(goal_rgb))
        marker = with_sites[shown].astype(int)
        # What the sites add is goal-coloured (green for drawer-close): the goal marker.
        assert np.all(marker[:, channel] > np.delete(marker, channel, axis=1).max(axis=1) + 50)

    def test_wrist_camera_moves_with_the_hand_and_sees_the_fingers(self, robot):
        first = robot.reset(seed=0).wrist
        for _ in range(15):
            observation, _ = robot.step([0.0, -1.0, -1.0, 1.0])
        assert _cyan_fraction(first) > 0.01 and _cyan_fraction(observation.wrist) > 0.01
        assert np.abs(first.astype(int) - observation.wrist.astype(int)).mean() > 5

    def test_render_false_for_one_call_skips_the_images(self, robot):
        observation = robot.reset(seed=0, render=False)
        assert observation.external is None and observation.wrist is None
        observation, _ = robot.step([0.0, 0.0, 0.0, 0.0], render=False)
        assert observation.external is None and observation.wrist is None
        assert robot.step([0.0, 0.0, 0.0, 0.0])[0].external is not None


class TestControl:

    @pytest.mark.parametrize('axis', [0, 1, 2])
    @pytest.mark.parametrize('sign', [1.0, -1.0])
    def test_command_moves_the_end_effector_in_the_commanded_direction(self, robot, axis, sign):
        robot.reset(seed=0)
        # The hand starts just above the drawer: lift it into free space and let it settle on
        # its mocap target, which it trails by a few centimetres while moving.
        for action in [[0.0, 0.0, 1.0, 0.0]] * 10 + [[0.0, 0.0, 0.0, 0.0]] * 15:
            start = robot.step(action, render=False)[0].ee_position
        action = np.zeros(4)
        action[axis] = sign
        for _ in range(8):
            observation, _ = robot.step(action, render=False)
        moved = observation.ee_position - start
        assert sign * moved[axis] > 0.02, moved
        assert abs(moved[axis]) > 2 * np.abs(np.delete(moved, axis)).max(), moved

    @pytest.mark.parametrize('action', [[0.0, 0.0, 0.0], [0.0] * 5, [float('nan'), 0, 0, 0],
                                        [0.0, float('inf'), 0.0, 0.0]])
    def test_malformed_action_raises_and_does_not_step(self, robot, action):
        before = robot.reset(seed=0)
        with pytest.raises(ValueError):
            robot.step(action)
        assert robot.step_count == 0
        np.testing.assert_array_equal(robot.data.qpos[:7], before.joint_positions[:7])

    def test_joint_state_names_and_shapes(self, robot):
        observation = robot.reset(seed=0)
        assert observation.joint_names == JOINT_NAMES == robot.joint_names
        assert observation.joint_positions.shape == observation.joint_velocities.shape == (9,)
        assert observation.state.shape == (39,) and observation.ee_position.shape == (3,)
        assert 0.0 <= observation.gripper_opening <= 1.0
        observation, _ = robot.step([0.0, 0.0, 1.0, 0.0], render=False)
        assert np.abs(observation.joint_velocities[:7]).max() > 0.01
        assert observation.time_s == pytest.approx(robot.control_period_s)

    def test_ee_orientation_is_the_hand_body_quaternion_in_xyzw(self, robot):
        observation = robot.reset(seed=0)
        q = observation.ee_orientation
        assert q.shape == (4,) and not q.flags.writeable
        assert np.linalg.norm(q) == pytest.approx(1.0)
        w, x, y, z = robot.data.body('hand').xquat
        np.testing.assert_allclose(q, [x, y, z, w])
        assert abs(q[1]) > 0.6 and abs(q[3]) > 0.6   # about a quarter turn about y

    def test_a_pose_target_from_the_mocap_position_is_reached(self, robot):
        robot.reset(seed=0)
        for action in [[0.0, 0.0, 1.0, 0.0]] * 5:   # lift clear of the drawer
            robot.step(action, render=False)
        target = robot.ee_target_position + [0.03, -0.02, 0.02]
        for _ in range(30):
            command = command_from_pose(target, robot.ee_target_position)
            observation, _ = robot.step(command, render=False)
        np.testing.assert_allclose(robot.ee_target_position, target, atol=1e-6)
        np.testing.assert_allclose(observation.ee_position, target, atol=0.01)


class TestReset:

    def test_reset_with_the_same_seed_restores_joints_state_and_image(self, robot):
        first = robot.reset(seed=3)
        variation = robot.variation
        for _ in range(5):
            robot.step([1.0, -0.5, 0.5, 1.0])
        again = robot.reset(seed=3)
        assert robot.variation == variation and robot.step_count == 0 and again.time_s == 0.0
        np.testing.assert_array_equal(again.joint_positions, first.joint_positions)
        np.testing.assert_array_equal(again.state, first.state)
        np.testing.assert_array_equal(again.external, first.external)

    def test_first_unseeded_reset_equals_reset_with_the_config_seed(self):
        sim = _robot(render=False, seed=5)
        try:
            first = sim.reset()
            sim.step([1.0, 1.0, 1.0, 1.0])
            np.testing.assert_array_equal(sim.reset(seed=5).state, first.state)
            other_seeds = {sim.reset(seed=s).state.tobytes() for s in (6, 7, 8)}
            assert len(other_seeds | {first.state.tobytes()}) > 1, 'seeds pick no variation'
        finally:
            sim.close()


@pytest.mark.filterwarnings('ignore:Constant')  # Meta-World's expert gains; it clips them
@pytest.mark.parametrize('task', ['reach-v3', 'drawer-close-v3', 'button-press-v3'])
def test_scripted_expert_succeeds_and_progress_reaches_100(task):
    sim = _robot(task=task, render=False)
    try:
        observation = sim.reset(seed=0)
        assert observation.external is None and observation.wrist is None
        progress = []
        for _ in range(150):
            _, info = sim.step(sim.expert_action())
            progress.append(info.progress)
            assert 0.0 <= info.progress <= 100.0
            assert (info.progress == 100.0) == info.success
            if info.success:
                break
        assert info.success, f'{task}: expert failed, progress {progress[-5:]}'
        assert max(progress[:-1]) > 50.0, 'progress did not rise before success'
        assert progress[0] < 50.0
    finally:
        sim.close()


def test_truncation_is_reported_and_stepping_on_is_allowed():
    sim = _robot(render=False, max_episode_steps=3, action_repeat=2)
    try:
        with pytest.raises(RuntimeError, match='reset'):
            sim.step([0.0, 0.0, 0.0, 0.0])
        sim.reset()
        flags = [sim.step([0.0, 0.0, 0.0, 0.0])[1].truncated for _ in range(4)]
        assert flags == [False, False, True, True]
        assert sim.step_count == 4
        sim.reset()
        assert not sim.step([0.0, 0.0, 0.0, 0.0])[1].truncated
        assert sim.goal == 'close the drawer'
    finally:
        sim.close()
    with pytest.raises(RuntimeError, match='closed'):
        sim.reset()


def test_robots_created_and_freed_one_after_another_keep_rendering(robot):
    # Meta-World pitfall: freeing one GL context after another one rendered left the other
    # unbound, and its later frames came back black.
    robot.reset(seed=0)
    first = _robot(task='reach-v3', wrist_camera='')
    assert first.reset(seed=0).external.mean() > 5
    del first  # never closed: freed by the garbage collector
    gc.collect()
    assert robot.step([0.0, 0.0, 1.0, 0.0])[0].external.mean() > 5, 'black after gc'
    second = _robot(task='reach-v3', wrist_camera='')
    try:
        assert second.reset(seed=0).external.mean() > 5, 'black after the first was freed'
    finally:
        second.close()
    assert robot.step([0.0, 0.0, 1.0, 0.0])[0].external.mean() > 5, 'black after close'


def test_renders_on_a_worker_thread_and_refuses_another_thread():
    # The ROS node runs physics and rendering on one dedicated thread, as here.
    sim = _robot(wrist_camera='')
    rendered, checked = threading.Event(), threading.Event()
    result = {}

    def worker() -> None:
        try:
            result['mean'] = sim.reset(seed=0).external.mean()
            rendered.set()
            checked.wait(timeout=30.0)
            result['after'] = sim.step([0.0, 0.0, 0.0, 0.0])[0].external.mean()
        except Exception as exc:  # reported to the main thread below
            result['error'] = exc
        finally:
            rendered.set()
            sim.close()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert rendered.wait(timeout=30.0)
        assert 'error' not in result, result.get('error')
        with pytest.raises(RuntimeError, match='thread'):
            sim.step([0.0, 0.0, 1.0, 0.0])
        assert sim.step_count == 0, 'physics stepped although the render was refused'
    finally:
        checked.set()
        thread.join(timeout=30.0)
    assert 'error' not in result, result.get('error')
    assert result['mean'] > 5 and result['after'] > 5

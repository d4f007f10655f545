"""The self-filter: the robot's mask drawn from its model, its joint states and a calibration.

Checked against the simulator's own segmentation of the same state, which the self-filter
never sees: it knows only the Sawyer's model file, the joint positions and the camera's
intrinsics and pose, as a real robot's would.
"""
import numpy as np
import pytest

pytest.importorskip('mujoco')

from sole_r1_ros.camera.pinhole import PinholeCamera, rotation_matrix  # noqa: E402
from sole_r1_ros.camera.self_filter import RobotSelfFilter  # noqa: E402

_BALL = '''<mujoco>
  <worldbody>
    <body name="carriage">
      <joint name="slide" type="slide" axis="1 0 0"/>
      <geom type="sphere" size="{size}" pos="{x} {y} {z}"/>
    </body>
  </worldbody>
</mujoco>
'''


def _ball(tmp_path, point, size: float = 0.01) -> str:
    path = tmp_path / 'ball.xml'
    path.write_text(_BALL.format(x=point[0], y=point[1], z=point[2], size=size))
    return str(path)


def _centroid(mask: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    return np.array([cols.mean() + 0.5, rows.mean() + 0.5])


@pytest.mark.parametrize('fx, fy, cx, cy', [(150.0, 140.0, 70.0, 50.0),
                                            (200.0, 210.0, 95.0, 72.0)])
def test_a_point_lands_on_the_pixel_the_intrinsics_and_pose_say(tmp_path, fx, fy, cx, cy):
    """An off-centre principal point, unequal focal lengths and a turned camera."""
    # The camera 1 m behind the world origin along -y, looking along +y (optical z), y down.
    orientation = (-0.70710678, 0.0, 0.0, 0.70710678)   # x, y, z, w: -90 deg about x
    camera = PinholeCamera(160, 120, fx, fy, cx, cy, (0.0, -1.0, 0.0), orientation)
    np.testing.assert_allclose(rotation_matrix(orientation) @ [0, 0, 1], [0, 1, 0], atol=1e-9)
    point = np.array([0.08, 0.1, -0.05])   # world: right, ahead, down a little
    self_filter = RobotSelfFilter(_ball(tmp_path, point), camera)
    try:
        for slide in (0.0, 0.05):   # the joint moves the ball 5 cm to the right
            mask = self_filter.mask({'slide': slide})
            assert mask.dtype == np.uint8 and mask.shape == (120, 160)
            assert set(np.unique(mask)) == {0, 255}
            expected = camera.project((point + [slide, 0, 0])[None])[0]
            np.testing.assert_allclose(_centroid(mask > 0), expected, atol=0.6)
        # A new size and principal point: the next mask follows them.
        wide = PinholeCamera(200, 100, fx, fy, 100.0, 50.0, camera.position, orientation)
        self_filter.set_camera(wide)
        mask = self_filter.mask({'slide': 0.0})
        assert mask.shape == (100, 200)
        np.testing.assert_allclose(_centroid(mask > 0), wide.project(point[None])[0], atol=0.6)
    finally:
        self_filter.close()
    # Drawn at half the size and scaled up: the same place, to a pixel.
    half = RobotSelfFilter(_ball(tmp_path, point, size=0.03), camera, max_side=80)
    try:
        mask = half.mask({'slide': 0.0})
        assert mask.shape == (120, 160)
        np.testing.assert_allclose(_centroid(mask > 0), camera.project(point[None])[0], atol=1.0)
    finally:
        half.close()


def test_with_depth_what_stands_in_front_of_the_robot_is_left_out(tmp_path):
    """A plate facing the camera, its front 0.95 m away; a surface read nearer on the left."""
    model = tmp_path / 'plate.xml'
    model.write_text('<mujoco><worldbody><body name="carriage"><joint name="slide" '
                     'type="slide" axis="1 0 0"/><geom type="box" size="0.3 0.05 0.2"/>'
                     '</body></worldbody></mujoco>')
    camera = PinholeCamera(32, 24, 30.0, 30.0, 16.0, 12.0, (0.0, -1.0, 0.0),
                           (-0.70710678, 0.0, 0.0, 0.70710678))
    self_filter = RobotSelfFilter(str(model), camera)
    try:
        plain = self_filter.mask({'slide': 0.0}) > 0
        assert plain[12, 8:24].all()
        depth = np.full((24, 32), 0.5, np.float32)   # something half a metre away ...
        depth[:, 16:] = 0.96   # ... and the plate itself, as a depth camera reads it
        depth[:, 24:] = np.nan   # no reading: the robot's, as without depth
        depth[:2] = 0.0
        kept = self_filter.mask({'slide': 0.0}, depth) > 0
        assert not kept[:, :16].any(), 'in front of the robot: left out'
        np.testing.assert_array_equal(kept[2:, 16:], plain[2:, 16:])
        np.testing.assert_array_equal(kept[:2], plain[:2])
        # Read 6 cm nearer than the plate: within a 10 cm margin, not the default 3 cm.
        depth[:, 16:24] = 0.89
        assert not (self_filter.mask({'slide': 0.0}, depth)[:, 16:24] > 0)[2:].any()
        np.testing.assert_array_equal(
            self_filter.mask({'slide': 0.0}, depth, depth_margin_m=0.1)[2:, 16:] > 0,
            plain[2:, 16:])
        with pytest.raises(ValueError, match='aligned'):
            self_filter.mask({'slide': 0.0}, depth[:, :30])
        with pytest.raises(ValueError, match='depth_margin_m'):
            self_filter.mask({'slide': 0.0}, depth, depth_margin_m=-0.01)
    finally:
        self_filter.close()


def test_missing_or_bad_joints_and_files_are_refused_with_the_reason(tmp_path):
    camera = PinholeCamera(32, 24, 30.0, 30.0, 16.0, 12.0, (0.0, -1.0, 0.0),
                           (-0.70710678, 0.0, 0.0, 0.70710678))
    model = _ball(tmp_path, (0.0, 0.0, 0.0), size=0.2)
    self_filter = RobotSelfFilter(model)
    assert self_filter.joint_names == ('slide',)
    with pytest.raises(RuntimeError, match='set_camera'):
        self_filter.mask({'slide': 0.0})
    self_filter.set_camera(camera)
    with pytest.raises(ValueError, match=r"lack \['slide'\]"):
        self_filter.mask({'elbow': 0.0})   # other devices' joints are ignored; ours missing
    with pytest.raises(ValueError, match='not finite'):
        self_filter.mask({'slide': float('nan')})
    assert self_filter.mask({'slide': 0.0, 'elbow': 1.0}).any()
    self_filter.close()
    with pytest.raises(RuntimeError, match='closed'):
        self_filter.mask({'slide': 0.0})
    with pytest.raises(FileNotFoundError, match='no robot model'):
        RobotSelfFilter(str(tmp_path / 'nothing.urdf'))
    (tmp_path / 'broken.urdf').write_text('<robot name="r"><link name=')
    with pytest.raises(ValueError, match='cannot load'):
        RobotSelfFilter(str(tmp_path / 'broken.urdf'))
    with pytest.raises(ValueError, match='shoulder'):
        RobotSelfFilter(model, camera_link='shoulder')
    with pytest.raises(ValueError, match='pedestal'):
        RobotSelfFilter(model, hidden_links=('pedestal',))
    with pytest.raises(ValueError, match='max_side'):
        RobotSelfFilter(model, max_side=-1)
    still = tmp_path / 'still.xml'
    still.write_text('<mujoco><worldbody><geom type="sphere" size="0.1"/></worldbody></mujoco>')
    with pytest.raises(ValueError, match='no hinge or slide joint'):
        RobotSelfFilter(str(still))
    with pytest.raises(ValueError, match='unit quaternion'):
        PinholeCamera(32, 24, 30.0, 30.0, 16.0, 12.0, (0, 0, 0), (0, 0, 0, 2))
    with pytest.raises(ValueError, match='focal'):
        PinholeCamera.from_camera_info(32, 24, [0.0] * 9, (0, 0, 0), (0, 0, 0, 1))


def test_a_urdf_is_read_too(tmp_path):
    """A URDF: MuJoCo reads its collision geometry, and its joints by their URDF names."""
    urdf = tmp_path / 'arm.urdf'
    urdf.write_text('''<robot name="arm">
  <link name="base"/>
  <link name="forearm"><collision><origin xyz="0.2 0 0"/>
    <geometry><box size="0.4 0.05 0.05"/></geometry></collision>
    <inertial><mass value="1"/><inertia ixx="0.01" iyy="0.01" izz="0.01" ixy="0" ixz="0"
      iyz="0"/></inertial></link>
  <joint name="elbow" type="revolute"><parent link="base"/><child link="forearm"/>
    <axis xyz="0 0 1"/><limit lower="-3" upper="3" effort="1" velocity="1"/></joint>
</robot>''')
    # Looking straight down from 1 m: x right, y down in the image is world -y.
    camera = PinholeCamera(64, 64, 40.0, 40.0, 32.0, 32.0, (0.0, 0.0, 1.0), (1.0, 0.0, 0.0, 0.0))
    self_filter = RobotSelfFilter(str(urdf), camera)
    try:
        assert self_filter.joint_names == ('elbow',)
        right = self_filter.mask({'elbow': 0.0}) > 0
        up = self_filter.mask({'elbow': np.pi / 2}) > 0
        assert _centroid(right)[0] > 36 and abs(_centroid(right)[1] - 32) < 2
        assert _centroid(up)[1] < 28 and abs(_centroid(up)[0] - 32) < 2
    finally:
        self_filter.close()


def test_the_sawyers_masks_match_the_simulators_segmentation(tmp_path):
    """Both cameras, along an expert episode: every robot pixel covered, little else.

    The object the hand reaches hides a little of the gripper from the wrist camera.
    The external view differs where the table hides the robot (the model has no table); the
    wrist camera, fixed to the hand, sees the pedestal only through the table, so it is
    hidden. The simulator's wrist camera (MJCF mode "track") keeps its orientation in the
    world while the hand turns, unlike a camera bolted to a real hand, so its calibration in
    the hand's frame is taken again at each step.
    """
    pytest.importorskip('metaworld')
    from sole_r1_ros.sim import MetaWorldRobot, SimConfig
    from sole_r1_ros.sim.metaworld_robot import write_robot_model

    robot = MetaWorldRobot(SimConfig(task='drawer-close-v3', image_width=96, image_height=72))
    filters = []
    try:
        observation = robot.reset(seed=3)
        model = write_robot_model(str(tmp_path / 'sawyer.xml'))
        (external, fixed_to), (wrist, hand) = robot.camera_calibrations()
        assert fixed_to == '' and hand == 'hand'
        filters = [RobotSelfFilter(model, external),
                   RobotSelfFilter(model, wrist, camera_link=hand,
                                   hidden_links=('pedestal', 'pedestal_feet', 'controller_box'))]
        scores = {'external': [], 'wrist': []}
        for step in range(12):
            if step:
                observation, _ = robot.step(robot.expert_action())
            joints = dict(zip(observation.joint_names, observation.joint_positions))
            filters[1].set_camera(robot.camera_calibrations()[1][0])
            truths = robot.render_robot_masks()
            for view, truth, self_filter in zip(scores, truths, filters):
                truth, drawn = truth > 0, self_filter.mask(joints) > 0
                assert truth.any()
                scores[view].append(((truth & drawn).sum() / (truth | drawn).sum(),
                                     (truth & drawn).sum() / truth.sum()))
        for view, values in scores.items():
            iou, recall = np.array(values).T
            assert iou.min() > 0.85 and recall.min() > 0.99, (view, iou, recall)
    finally:
        for self_filter in filters:
            self_filter.close()
        robot.close()


@pytest.mark.parametrize('max_side', [0, 48])
def test_an_rgbd_cameras_depth_leaves_the_table_and_the_drawer_out(tmp_path, max_side):
    """Along an expert episode, with the simulated camera's depth, noisy and with holes.

    Without depth the mask covers what hides the robot too (the table's edge, the drawer);
    with it the mask is the robot's visible pixels, and no robot pixel is lost, drawn at the
    camera's size or shrunk (``draw_max_side``) and scaled up.
    """
    pytest.importorskip('metaworld')
    from sole_r1_ros.sim import MetaWorldRobot, SimConfig
    from sole_r1_ros.sim.metaworld_robot import write_robot_model

    rng = np.random.default_rng(0)
    robot = MetaWorldRobot(SimConfig(task='drawer-close-v3', image_width=128, image_height=96,
                                     wrist_camera=''))
    self_filter = None
    try:
        observation = robot.reset(seed=3)
        self_filter = RobotSelfFilter(write_robot_model(str(tmp_path / 'sawyer.xml')),
                                      robot.camera_calibrations()[0][0], max_side=max_side)
        scores = []
        for step in range(8):
            if step:
                for _ in range(3):
                    observation, _ = robot.step(robot.expert_action())
            truth = robot.render_robot_masks()[0] > 0
            depth = robot.render_depths()[0] + rng.normal(0.0, 0.01, truth.shape)
            depth[rng.random(truth.shape) < 0.05] = 0.0   # 5 % of pixels read nothing
            joints = dict(zip(observation.joint_names, observation.joint_positions))
            plain, kept = self_filter.mask(joints) > 0, self_filter.mask(joints, depth) > 0
            assert not (kept & ~plain).any()
            # Drawn by a depth pass, not a segmentation one: with nothing read, the same mask.
            np.testing.assert_array_equal(
                self_filter.mask(joints, np.zeros(truth.shape, np.float32)) > 0, plain)
            scores.append([(truth & drawn).sum() / (truth | drawn).sum()
                           for drawn in (plain, kept)]
                          + [(truth & drawn).sum() / truth.sum() for drawn in (plain, kept)])
        iou_plain, iou_kept, covered_plain, covered_kept = np.array(scores).T
        assert (iou_kept > iou_plain + 0.015).all(), (iou_plain, iou_kept)
        assert (covered_kept > covered_plain - 0.005).all(), (covered_plain, covered_kept)
        if not max_side:
            assert iou_kept.min() > 0.99 and covered_kept.min() > 0.99
    finally:
        if self_filter is not None:
            self_filter.close()
        robot.close()


def test_a_learning_run_in_simulation_can_take_its_masks_from_the_self_filter(tmp_path):
    """robot_mask_node.robot_model=simulator: the Sawyer's file and calibration, no sim masks."""
    pytest.importorskip('metaworld')
    from sole_r1_ros.bringup import check_params
    from sole_r1_ros.commands.learn import (
        _calibrate_simulated_self_filter, _match_robot_erasing, SIMULATED_ROBOT)

    params = {'reward_node': {'backend': 'compact', 'model': '', 'erased_model': 'shipped'},
              'sim_robot_node': {'task': 'drawer-close-v3'},
              'robot_mask_node': {'robot_model': SIMULATED_ROBOT}}
    _calibrate_simulated_self_filter(params, tmp_path)
    _match_robot_erasing(params)
    node = params['robot_mask_node']
    assert node['robot_model'] == str(tmp_path / 'robot_model.xml')
    assert node['camera_link'] == '' and len(node['camera_position']) == 3
    assert 'publish_robot_masks' not in params['sim_robot_node']
    assert params['camera_node'] == {'erase_robot': True, 'erased_beside': True}
    check_params(params)   # every value as the nodes declare them
    self_filter = RobotSelfFilter(node['robot_model'])
    assert len(self_filter.joint_names) == 9
    self_filter.close()
    with pytest.raises(ValueError, match='real one gives its URDF'):
        _calibrate_simulated_self_filter({'robot_mask_node': {'robot_model': SIMULATED_ROBOT}},
                                         tmp_path)
    # A model of erased frames (not a pair) with the wrist view asked for: the node draws
    # the external camera only.
    from sole_r1_ros.compact.predictor import erased_checkpoint_path
    erased = {'backend': 'compact', 'model': erased_checkpoint_path('shipped')}
    with pytest.raises(ValueError, match="external camera's robot mask only"):
        _match_robot_erasing({'reward_node': erased, 'sim_robot_node': {},
                              'robot_mask_node': {}, 'camera_node': {'use_wrist': True}},
                             {'camera_node.use_wrist'})
    params = {'reward_node': erased, 'sim_robot_node': {}, 'robot_mask_node': {}}
    _match_robot_erasing(params)
    assert params['camera_node'] == {'use_wrist': False, 'erase_robot': True}
    assert 'publish_robot_masks' not in params['sim_robot_node']

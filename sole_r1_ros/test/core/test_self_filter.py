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


_INERTIAL = ('<inertial><mass value="1"/><inertia ixx="0.01" iyy="0.01" izz="0.01" ixy="0" '
             'ixz="0" iyz="0"/></inertial>')
_LIMIT = '<limit lower="-3" upper="3" effort="1" velocity="1"/>'
# Looking straight down from 1.5 m: x right, world y up in the image.
_DOWN = PinholeCamera(120, 120, 60.0, 60.0, 60.0, 60.0, (0.0, 0.0, 1.5), (1.0, 0.0, 0.0, 0.0))


def _gripper_urdf(mimic: str) -> str:
    """An arm link along x and two fingers at its tip; the right one mimics the left (or not)."""
    return f'''<robot name="gripper"><link name="base"/>
  <link name="forearm"><collision><origin xyz="0.2 0 0"/>
    <geometry><box size="0.4 0.04 0.04"/></geometry></collision>{_INERTIAL}</link>
  <joint name="elbow" type="revolute"><parent link="base"/><child link="forearm"/>
    <axis xyz="0 0 1"/>{_LIMIT}</joint>
  <link name="left_finger"><collision><origin xyz="0.1 0 0"/>
    <geometry><box size="0.2 0.02 0.02"/></geometry></collision>{_INERTIAL}</link>
  <joint name="finger_joint" type="revolute"><parent link="forearm"/><child link="left_finger"/>
    <origin xyz="0.4 0.05 0"/><axis xyz="0 0 1"/>{_LIMIT}</joint>
  <link name="right_finger"><collision><origin xyz="0.1 0 0"/>
    <geometry><box size="0.2 0.02 0.02"/></geometry></collision>{_INERTIAL}</link>
  <joint name="right_finger_joint" type="revolute"><parent link="forearm"/>
    <child link="right_finger"/><origin xyz="0.4 -0.05 0"/><axis xyz="0 0 1"/>{_LIMIT}
    {mimic}</joint>
</robot>'''


def test_a_urdfs_mimic_joints_follow_the_joints_they_mimic(tmp_path):
    """A Robotiq-like gripper's driver publishes the driven joint only; MuJoCo ignores <mimic>."""
    mimicking = tmp_path / 'mimic.urdf'
    mimicking.write_text(_gripper_urdf(
        '<mimic joint="finger_joint" multiplier="-1.5" offset="0.1"/>'))
    plain = tmp_path / 'plain.urdf'
    plain.write_text(_gripper_urdf(''))
    with_mimic = RobotSelfFilter(str(mimicking), _DOWN)
    without = RobotSelfFilter(str(plain), _DOWN)
    try:
        assert with_mimic.joint_names == ('elbow', 'finger_joint')
        assert with_mimic.mimic_joints['right_finger_joint'].source == 'finger_joint'
        assert without.joint_names == ('elbow', 'finger_joint', 'right_finger_joint')
        for elbow, finger in ((0.0, 0.0), (0.3, 0.6), (-0.5, -0.4)):
            drawn = with_mimic.mask({'elbow': elbow, 'finger_joint': finger,
                                     'right_finger_joint': 2.0})   # computed, not read
            expected = without.mask({'elbow': elbow, 'finger_joint': finger,
                                     'right_finger_joint': -1.5 * finger + 0.1})
            np.testing.assert_array_equal(drawn, expected)
        assert not np.array_equal(  # the mimic moved: not drawn at its rest
            with_mimic.mask({'elbow': 0.0, 'finger_joint': 0.6}),
            without.mask({'elbow': 0.0, 'finger_joint': 0.6, 'right_finger_joint': 0.0}))
    finally:
        with_mimic.close()
        without.close()
    wrong = tmp_path / 'wrong.urdf'
    wrong.write_text(_gripper_urdf('<mimic joint="thumb_joint"/>'))
    with pytest.raises(ValueError, match="mimics 'thumb_joint'"):
        RobotSelfFilter(str(wrong))


def _cube_stl(path, side: float) -> None:
    """A binary STL cube of this side [m], centred on its origin (MuJoCo reads binary STL)."""
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) * side / 2
    triangles = []
    for axis in range(3):
        for sign in (-1, 1):
            a, b, c, d = corners[[i for i in range(8) if np.sign(corners[i, axis]) == sign]]
            for triangle in ((a, b, d), (a, d, c)):   # a, b, d, c go round the face
                outward = np.dot(np.cross(triangle[1] - triangle[0], triangle[2] - triangle[0]),
                                 triangle[0]) > 0
                triangles.append(triangle if outward else triangle[::-1])
    layout = [('normal', '<f4', 3), ('vertices', '<f4', (3, 3)), ('attributes', '<u2')]
    records = np.zeros(len(triangles), dtype=layout)
    records['vertices'] = triangles
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(80) + np.uint32(len(triangles)).tobytes() + records.tobytes())


def _two_link_urdf(left: str, right: str, right_scale: str = '1 1 1') -> str:
    """Two links 0.6 m apart along x (left at -0.3), each one mesh."""
    links = []
    for name, x, mesh, scale in (('left', -0.3, left, '1 1 1'),
                                 ('right', 0.3, right, right_scale)):
        links.append(f'''<link name="{name}"><collision><geometry><mesh filename="{mesh}"
          scale="{scale}"/></geometry></collision>{_INERTIAL}</link>
        <joint name="{name}_joint" type="revolute"><parent link="base"/><child link="{name}"/>
          <origin xyz="{x} 0 0"/><axis xyz="0 0 1"/>{_LIMIT}</joint>''')
    return f'<robot name="two"><link name="base"/>{"".join(links)}</robot>'


def _widths(self_filter: RobotSelfFilter) -> tuple[int, int]:
    """The drawn widths [px] of the left and the right link."""
    mask = self_filter.mask({'left_joint': 0.0, 'right_joint': 0.0}) > 0
    return int(mask[:, :60].any(axis=0).sum()), int(mask[:, 60:].any(axis=0).sum())


def test_mesh_paths_are_found_where_the_urdf_says_and_two_meshes_stay_two(tmp_path):
    """package://, file:// and relative paths; one file name in two packages is refused."""
    share = tmp_path / 'share'
    _cube_stl(share / 'arm_description' / 'meshes' / 'link.stl', 0.1)   # 4 px wide from 1.5 m
    _cube_stl(share / 'gripper_description' / 'meshes' / 'link.stl', 0.3)   # 15 px
    _cube_stl(share / 'gripper_description' / 'meshes' / 'finger.stl', 0.3)
    urdf_dir = share / 'arm_description' / 'urdf'
    urdf_dir.mkdir()
    urdf = urdf_dir / 'robot.urdf'

    def widths(left: str, right: str, mesh_dir: str = '', scale: str = '1 1 1'):
        urdf.write_text(_two_link_urdf(left, right, scale))
        self_filter = RobotSelfFilter(str(urdf), _DOWN, mesh_dir=mesh_dir)
        try:
            return _widths(self_filter)
        finally:
            self_filter.close()
    arm = 'package://arm_description/meshes/link.stl'
    finger = '../../gripper_description/meshes/finger.stl'
    # The package's folder found above the URDF; a path relative to the URDF; a file:// URI.
    assert widths(arm, finger) == (4, 15)
    uri = (share / 'gripper_description' / 'meshes' / 'finger.stl').as_uri()
    assert widths('../meshes/link.stl', uri) == (4, 15)
    # mesh_dir: a folder holding the packages, or one holding the meshes (as before).
    gripper = 'package://gripper_description/meshes/finger.stl'
    assert widths(arm, gripper, mesh_dir=str(share)) == (4, 15)
    assert widths('link.stl', 'finger.stl',
                  mesh_dir=str(share / 'gripper_description' / 'meshes')) == (15, 15)
    # The same file name in two packages: MuJoCo names meshes by file name and would draw
    # the gripper's link with the arm's mesh.
    other = 'package://gripper_description/meshes/link.stl'
    with pytest.raises(ValueError, match='two different mesh files of the same name'):
        widths(arm, other, mesh_dir=str(share))
    # At another scale MuJoCo keeps them apart.
    assert widths(arm, other, mesh_dir=str(share), scale='0.5 0.5 0.5') == (4, 7)
    # Two packages' paths found as one file, by its name in a flat mesh_dir: refused.
    with pytest.raises(ValueError, match='are both found as'):
        widths(arm, other, mesh_dir=str(share / 'arm_description' / 'meshes'))
    with pytest.raises(ValueError, match=r"no mesh file 'package://arm_description/meshes/"
                                         r"missing.stl' \(tried"):
        widths('package://arm_description/meshes/missing.stl', gripper, mesh_dir=str(share))


def test_a_kinematic_urdf_without_masses_is_drawn(tmp_path):
    """Links without <inertial> or of mass 0: drawing needs only their poses."""
    urdf = tmp_path / 'kinematic.urdf'
    urdf.write_text(f'''<robot name="arm"><link name="base"/>
  <link name="forearm"><collision><origin xyz="0.2 0 0"/>
    <geometry><box size="0.4 0.05 0.05"/></geometry></collision></link>
  <joint name="elbow" type="revolute"><parent link="base"/><child link="forearm"/>
    <axis xyz="0 0 1"/>{_LIMIT}</joint>
  <link name="tool"><inertial><mass value="0"/><inertia ixx="0" iyy="0" izz="0" ixy="0"
    ixz="0" iyz="0"/></inertial></link>
  <joint name="tool_roll" type="continuous"><parent link="forearm"/><child link="tool"/>
    <origin xyz="0.4 0 0"/><axis xyz="1 0 0"/></joint>
</robot>''')
    self_filter = RobotSelfFilter(str(urdf), _DOWN)
    try:
        assert self_filter.joint_names == ('elbow', 'tool_roll')
        mask = self_filter.mask({'elbow': 0.0, 'tool_roll': 0.0}) > 0
        assert mask[60, 62:70].all() and not mask[60, :55].any()
    finally:
        self_filter.close()


def test_links_with_visual_geometry_only_are_named(tmp_path):
    """A link without collision geometry is never drawn (MuJoCo draws a URDF's): named."""
    urdf = tmp_path / 'visual.urdf'
    visual = '<visual><geometry><box size="0.3 0.3 0.3"/></geometry></visual>'
    urdf.write_text(f'''<robot name="r"><link name="base">{visual}</link>
  <link name="camera_housing">{visual}{_INERTIAL}</link>
  <joint name="pan" type="revolute"><parent link="base"/><child link="camera_housing"/>
    <axis xyz="0 0 1"/>{_LIMIT}</joint>
  <link name="arm"><collision><geometry><box size="0.1 0.1 0.1"/></geometry></collision>
    {visual}{_INERTIAL}</link>
  <joint name="shoulder" type="revolute"><parent link="base"/><child link="arm"/>
    <origin xyz="0.4 0 0"/><axis xyz="0 0 1"/>{_LIMIT}</joint>
</robot>''')
    self_filter = RobotSelfFilter(str(urdf), _DOWN)
    try:
        assert self_filter.undrawn_links == ('base', 'camera_housing')
        assert not (self_filter.mask({'pan': 0.0, 'shoulder': 0.0}) > 0)[50:70, 50:70].any()
    finally:
        self_filter.close()
    hidden = RobotSelfFilter(str(urdf), hidden_links=('base',))
    assert hidden.undrawn_links == ('camera_housing',)
    hidden.close()


def test_camera_info_p_binning_and_roi_are_read_as_image_geometry_does():
    """A rectified image's P; a binned or cropped image's intrinsics and size."""
    k = [600.0, 0, 330.0, 0, 610.0, 250.0, 0, 0, 1]
    p = [520.0, 0, 332.5, 0, 0, 548.0, 236.0, 0, 0, 0, 1, 0]
    pose = ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))

    def read(**fields):   # cx, cy as image_geometry has them (pixel centres at integers)
        camera = PinholeCamera.from_camera_info(640, 480, k, *pose, **fields)
        assert camera.ros_k()[2::3][:2] == [camera.cx - 0.5, camera.cy - 0.5]
        return (camera.width, camera.height, camera.fx, camera.fy, camera.cx - 0.5,
                camera.cy - 0.5)
    assert read() == (640, 480, 600.0, 610.0, 330.0, 250.0)
    assert read(p=p) == (640, 480, 520.0, 548.0, 332.5, 236.0)
    assert read(binning=(2, 4)) == (320, 120, 300.0, 152.5, 165.0, 62.5)
    assert read(binning=(1, 0)) == read()
    assert read(roi=(100, 50, 300, 200)) == (300, 200, 600.0, 610.0, 230.0, 200.0)
    assert read(p=p, binning=(2, 2), roi=(100, 50, 301, 200)) == (
        150, 100, 260.0, 274.0, 116.25, 93.0)
    with pytest.raises(ValueError, match='not inside'):
        read(roi=(400, 0, 300, 200))
    with pytest.raises(ValueError, match='P needs 12'):
        read(p=[0.0] * 9)
    with pytest.raises(ValueError, match='camera_info P'):
        read(p=[0.0] * 12)   # an uncalibrated camera's P


def test_a_camera_infos_centred_principal_point_draws_a_centred_mask(tmp_path):
    """A CameraInfo counts pixels from the first one's centre: cx = (W - 1) / 2 is the middle.

    Read as this class's corner-based cx, masks sat half a pixel up and left of the robot.
    """
    camera = PinholeCamera.from_camera_info(
        40, 30, [40.0, 0, 19.5, 0, 40.0, 14.5, 0, 0, 1], (0.0, 0.0, 1.5), (1.0, 0.0, 0.0, 0.0))
    assert (camera.cx, camera.cy) == (20.0, 15.0)
    self_filter = RobotSelfFilter(_ball(tmp_path, (0.0, 0.0, 0.0), size=0.1), camera)
    try:
        mask = self_filter.mask({'slide': 0.0}) > 0     # a ball on the optical axis
    finally:
        self_filter.close()
    assert mask.any() and not mask.all()
    np.testing.assert_array_equal(mask, mask[:, ::-1])
    np.testing.assert_array_equal(mask, mask[::-1])


def test_a_scenes_floor_is_never_drawn_into_the_mask(tmp_path):
    """A Menagerie scene.xml given for the robot masked the floor too: half the picture."""
    model = tmp_path / 'scene.xml'
    model.write_text('<mujoco><worldbody><geom name="floor" type="plane" size="5 5 0.1"/>'
                     '<body name="carriage" pos="0 0 0.3"><joint name="slide" type="slide" '
                     'axis="1 0 0"/><geom type="sphere" size="0.05"/></body></worldbody>'
                     '</mujoco>')
    # 2 m above the floor, looking straight down at the ball.
    camera = PinholeCamera(64, 48, 60.0, 60.0, 32.0, 24.0, (0.0, 0.0, 2.0), (1.0, 0.0, 0.0, 0.0))
    self_filter = RobotSelfFilter(str(model), camera)
    try:
        mask = self_filter.mask({'slide': 0.0}) > 0
        assert self_filter.planes == ('floor',)
        assert 0 < mask.mean() < 0.05, f'{mask.mean():.0%} of the picture masked'
    finally:
        self_filter.close()

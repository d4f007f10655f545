"""Launch files: static checks everywhere; building and launching only where launch_ros exists."""
import ast
import importlib
import os
import re

import pytest
import yaml

from sole_r1_ros.bringup import check_params, load_params, node_sections, write_params_file
from sole_r1_ros.configuration import specs

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_LAUNCH_DIR = os.path.join(_PACKAGE_ROOT, 'launch')
_CONFIG_DIR = os.path.join(_PACKAGE_ROOT, 'config')
_LAUNCH_FILES = sorted(f for f in os.listdir(_LAUNCH_DIR) if f.endswith('.launch.py'))


def _console_scripts() -> dict[str, str]:
    """Map executable name -> module, parsed from setup.py."""
    source = open(os.path.join(_PACKAGE_ROOT, 'setup.py')).read()
    return dict(re.findall(r"'([\w-]+) = ([\w.]+):main'", source))


def _node_calls(tree: ast.AST) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, 'id', getattr(n.func, 'attr', None)) in ('Node', 'LifecycleNode')]


def _keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def test_there_are_launch_files():
    assert {'sim_robot.launch.py', 'sim_learn.launch.py', 'real_robot_learn.launch.py',
            'reward_only.launch.py', 'gazebo_learn.launch.py'} <= set(_LAUNCH_FILES)


@pytest.mark.parametrize('launch_file', _LAUNCH_FILES)
def test_launch_file_is_well_formed(launch_file):
    tree = ast.parse(open(os.path.join(_LAUNCH_DIR, launch_file)).read(), launch_file)
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert 'generate_launch_description' in functions
    scripts = _console_scripts()
    calls = _node_calls(tree)
    assert calls, f'{launch_file} starts no node'
    for call in calls:
        executable = _keyword(call, 'executable')
        assert isinstance(executable, ast.Constant), 'executable must be a literal'
        if _keyword(call, 'package').value == 'sole_r1_ros':
            assert executable.value in scripts, f'{executable.value} is not a console script'
        for required in ('name', 'namespace'):
            assert _keyword(call, required) is not None, \
                f'{launch_file}: {executable.value} has no {required}= (parameter precedence)'
    for node in ast.walk(tree):  # every config/<file> the launch file names exists
        if isinstance(node, ast.List):
            items = [e.value for e in node.elts if isinstance(e, ast.Constant)]
            if 'config' in items and items[-1] != 'config':
                assert os.path.isfile(os.path.join(_CONFIG_DIR, items[-1])), items[-1]


def test_the_node_the_launch_helpers_start_is_named_and_namespaced():
    path = os.path.join(_PACKAGE_ROOT, 'sole_r1_ros', 'launch_utils.py')
    calls = _node_calls(ast.parse(open(path).read(), path))
    assert calls, 'launch_utils starts no node any more: drop this test'
    for call in calls:
        for required in ('name', 'namespace'):
            assert _keyword(call, required) is not None, f'launch_utils: no {required}='


@pytest.mark.parametrize('config_file', sorted(
    f for f in os.listdir(_CONFIG_DIR) if f.endswith('.yaml')))
def test_yaml_parameters_are_declared_by_their_node(config_file):
    pytest.importorskip('rclpy')
    scripts = _console_scripts()
    params = load_params(os.path.join(_CONFIG_DIR, config_file))
    assert set(params) <= set(scripts), f'{config_file}: nodes without an executable'
    check_params(params)   # unknown names, types, ranges, cross-field rules
    for node, values in params.items():
        fields = {s.name: s for cls, prefix in node_sections(node).values()
                  for s in specs(cls, prefix)}
        for name, value in values.items():   # rclpy rejects e.g. an int for a float parameter
            spec = fields[name]
            kind = spec.element if spec.kind is tuple else spec.kind
            items = value if spec.kind is tuple else [value]
            assert all(type(v) is kind for v in items), \
                f'{config_file}: {node}.{name} is {value!r}; write it as {kind.__name__}'


def test_the_gamepad_block_of_the_real_robot_yaml_is_the_gamepad_mapping(tmp_path):
    """Its commented-out teleop.* lines, uncommented, are rl/teleop.py's GAMEPAD and load.

    ``sole-r1 learn`` writes them into its parameters file beside ``teleop: true``.
    """
    pytest.importorskip('rclpy')
    import dataclasses

    from sole_r1_ros.rl.teleop import GAMEPAD
    path = os.path.join(_CONFIG_DIR, 'real_robot_learn.yaml')
    text = open(path).read()
    block = yaml.safe_load('\n'.join(line.replace('# ', '', 1).strip()
                                     for line in text.splitlines()
                                     if line.strip().startswith('# teleop.')))
    mapping = {f'teleop.{k}': v for k, v in dataclasses.asdict(GAMEPAD).items()}
    mapping.pop('teleop.timeout_s')
    mapping.pop('teleop.invalid_hold_s')
    assert block == {k: list(v) if isinstance(v, tuple) else v for k, v in mapping.items()}
    params = load_params(path)
    params['learner_node'].update(block)
    checked = check_params(params)
    write_params_file(tmp_path / 'params.yaml', checked)
    assert load_params(tmp_path / 'params.yaml') == checked


@pytest.mark.parametrize('values, message', [
    ({'use_ee_pose': False}, 'needs use_ee_pose'),                # ee steps from no pose
    ({'action_layout': 'joint_position', 'observation': 'sim_state_privileged',
      'command.command_type': 'float64_multiarray'}, "needs observation 'proprio'"),
    ({'run_dir': ' '}, 'run_dir is empty'),
    ({'use_sim_time': 'yes'}, 'use_sim_time must be true or false')])
def test_learner_settings_unsafe_together_are_refused_before_anything_starts(values, message):
    pytest.importorskip('rclpy')
    with pytest.raises(ValueError, match=message):
        check_params({'learner_node': values})
    assert check_params({'learner_node': {'use_sim_time': True}})   # ROS's own: accepted


@pytest.mark.parametrize('launch_file', _LAUNCH_FILES)
def test_launch_description_builds_with_launch_ros(launch_file):
    pytest.importorskip('launch_ros', reason='launch_ros is not installed (no ROS install here)')
    spec = importlib.util.spec_from_file_location('launch_under_test',
                                                  os.path.join(_LAUNCH_DIR, launch_file))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.generate_launch_description().entities


def test_rviz_config_shows_the_reward_image_marker_and_camera():
    config = yaml.safe_load(open(os.path.join(_CONFIG_DIR, 'sole_r1.rviz')))
    displays = {d['Topic']['Value']: d for d in config['Visualization Manager']['Displays']
                if 'Topic' in d}
    assert displays['/sole_r1/reward_image']['Class'] == 'rviz_default_plugins/Image'
    # the reward node publishes its image reliable; a best-effort camera needs best effort
    assert displays['/sole_r1/reward_image']['Topic']['Reliability Policy'] == 'Reliable'
    assert displays['/sole_r1/marker']['Class'] == 'rviz_default_plugins/Marker'
    assert displays['/camera/external/image_raw']['Topic']['Reliability Policy'] == 'Best Effort'
    # The self-filter's overlay (sensor-data QoS like the cameras), off until calibrating.
    overlay = displays['/camera/external/robot_mask_overlay']
    assert overlay['Topic']['Reliability Policy'] == 'Best Effort' and not overlay['Enabled']


def _declared(tree: ast.AST) -> dict:
    """{argument: default or None} of the DeclareLaunchArgument calls."""
    declared = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'DeclareLaunchArgument':
            default = _keyword(node, 'default_value')
            declared[node.args[0].value] = (default.value if isinstance(default, ast.Constant)
                                            else None)
    return declared


@pytest.mark.parametrize('launch_file', _LAUNCH_FILES)
def test_a_params_file_that_is_not_there_stops_the_launch(launch_file):
    """launch_ros only warns of it and starts every node on code defaults (another arm's)."""
    text = open(os.path.join(_LAUNCH_DIR, launch_file)).read()
    if "'params_file'" in text and 'IncludeLaunchDescription' not in text:
        assert 'params_file_argument(' in text
        assert 'OpaqueFunction(function=resolve_params_file)' in text


@pytest.mark.parametrize('launch_file', ['real_robot_learn.launch.py', 'reward_only.launch.py'])
def test_robot_topics_default_to_names_in_the_namespace(launch_file):
    """As ``sole-r1 learn --namespace``: namespace:=arm1 reads /arm1/camera/..., not /camera."""
    declared = _declared(ast.parse(open(os.path.join(_LAUNCH_DIR, launch_file)).read()))
    # reward_only had no joint_states: joint_states:= was ignored without a word
    assert {'joint_states', 'use_sim_time'} <= set(declared)
    topics = {name: declared[name] for name in (
        'external_camera', 'wrist_camera', 'joint_states', 'ee_pose', 'joy', 'external_depth')
        if name in declared}
    assert topics and not [t for t in topics.values() if t.startswith('/')], topics


def test_gazebo_declares_every_argument_it_passes_on():
    """An include sets its launch_arguments, replacing what the command line said.

    So each must be an argument of gazebo_learn itself, or a user's params_file:= is silently
    ignored.
    """
    tree = ast.parse(open(os.path.join(_LAUNCH_DIR, 'gazebo_learn.launch.py')).read())
    declared = _declared(tree)
    includes = [_keyword(node, 'launch_arguments') for node in ast.walk(tree)
                if isinstance(node, ast.Call)
                and getattr(node.func, 'id', '') == 'IncludeLaunchDescription'
                and 'real_robot_learn' in ast.unparse(node)]
    passed = {e.value for include in includes for node in ast.walk(include)
              if isinstance(node, ast.Tuple) for e in node.elts if isinstance(e, ast.Constant)}
    assert {'params_file', 'command_topic', 'base_url', 'run_dir', 'record'} <= passed
    assert passed <= set(declared), passed - set(declared)
    assert declared['run_dir'] != 'runs/real_robot'   # a run resumes what it finds there


def test_a_launch_lines_command_topic_is_recorded_where_the_commands_go():
    """command_topic:= reached the learner only: the bag recorded the params file's topic."""
    from sole_r1_ros.launch_utils import recorder_extra_topics
    path = os.path.join(_CONFIG_DIR, 'real_robot_joint.yaml')
    topics = recorder_extra_topics(path, '/forward_position_controller/commands')
    assert ('/forward_position_controller/commands=trajectory_msgs/msg/JointTrajectory'
            in topics)
    assert recorder_extra_topics(path) == recorder_extra_topics(path, '')
    assert len(set(recorder_extra_topics(path))) == len(recorder_extra_topics(path))   # once
    assert any(t.lstrip('/').startswith('joint_trajectory_controller/joint_trajectory=')
               for t in recorder_extra_topics(path))


def test_sim_learn_learns_the_goal_of_the_task_it_simulates():
    """``task:=window-close-v3`` alone kept the goal "close the drawer" (the default)."""
    from sole_r1_ros.launch_utils import goal_of
    assert goal_of('', 'window-close-v3') == 'slide the window closed'
    assert goal_of('  ', 'drawer-close-v3') == 'close the drawer'
    assert goal_of('shut it', 'window-close-v3') == 'shut it'   # a goal given wins
    with pytest.raises(ValueError, match='goal:='):
        goal_of('', 'no-such-task-v3')
    source = open(os.path.join(_LAUNCH_DIR, 'sim_learn.launch.py')).read()
    # the learner's and the reward node's (which refuses an empty goal: it died at start)
    assert source.count("{'goal': task_goal()}") == 1 and source.count("'goal': task_goal()") == 2
    assert "DeclareLaunchArgument('goal', default_value=''" in source


@pytest.mark.parametrize('text, says', [
    ('learner_node: [unclosed', 'cannot read the parameters file'),
    ('learner_node: 5\n', 'is not a node section'),
    ('learner_node:\n  ros__parameters: 5\n', 'is not a node section')])
def test_a_malformed_params_file_is_a_value_error_naming_the_file(tmp_path, text, says):
    """A YAML error, a folder, or a section of the wrong shape raised a traceback."""
    path = tmp_path / 'p.yaml'
    path.write_text(text)
    with pytest.raises(ValueError, match=says):
        load_params(path)
    with pytest.raises(ValueError, match='cannot read the parameters file'):
        load_params(tmp_path)


def test_a_namespace_rcl_would_refuse_is_refused_before_a_run_starts(tmp_path):
    """It raised in the first node, after the run directory had its params file."""
    from sole_r1_ros.commands.learn import LearnRequest
    with pytest.raises(ValueError, match='is not a ROS namespace'):
        LearnRequest(goal='g', run_dir=tmp_path / 'run', namespace='bad ns!')
    LearnRequest(goal='g', run_dir=tmp_path / 'run', namespace='robot_1/arm')


def test_a_namespace_with_a_trailing_slash_is_taken_as_the_namespace(tmp_path):
    """'arm1/' passed the check, then the first node refused it mid-start."""
    from sole_r1_ros.commands.learn import check_namespace, default_run_dir, LearnRequest
    assert LearnRequest(goal='g', run_dir=tmp_path, namespace='/arm1/').namespace == 'arm1'
    assert check_namespace('robot_1/arm/') == 'robot_1/arm' and check_namespace('/') == ''
    # each arm its own run by default: one default had the second arm resume the first's
    assert default_run_dir('') == 'runs/learn'
    assert default_run_dir('/robot_1/arm') == 'runs/learn-robot_1-arm'


def test_a_run_in_the_old_default_folder_of_every_namespace_is_pointed_to(tmp_path,
                                                                          monkeypatch):
    """It would otherwise start over in the namespace's new folder without a word."""
    from sole_r1_ros.launch_utils import moved_default_run
    monkeypatch.chdir(tmp_path)
    assert moved_default_run('runs/learn', 'runs/learn-arm1') == ''   # no run there
    (tmp_path / 'runs' / 'learn' / 'checkpoints').mkdir(parents=True)
    said = moved_default_run('runs/learn', 'runs/learn-arm1')
    assert 'runs/learn, the folder of every namespace before' in said
    assert '--run-dir runs/learn' in said
    assert moved_default_run('runs/learn', 'runs/learn') == ''   # the root namespace's own
    (tmp_path / 'runs' / 'learn-arm1' / 'checkpoints').mkdir(parents=True)
    assert moved_default_run('runs/learn', 'runs/learn-arm1') == ''   # it has its own run


_TWO_ARMS = '''
/**/camera_node:
  ros__parameters: {stride: 4}
/arm1/learner_node:
  ros__parameters:
    episode_length: 40
    safety: {max_speed_m_s: 0.05}
/arm2/learner_node:
  ros__parameters:
    episode_length: 25
    safety: {max_speed_m_s: 0.3}
arm2:
  camera_node:
    ros__parameters: {stride: 7}
/arm2/**:
  ros__parameters: {use_sim_time: true}
'''


def test_a_params_file_with_a_section_per_arm_gives_each_namespace_its_own(tmp_path):
    """Sections were read by node name alone: arm1 ran with arm2's, its speed limit included."""
    path = tmp_path / 'arms.yaml'
    path.write_text(_TWO_ARMS)
    arm1 = load_params(path, also=('learner_node',), namespace='arm1')
    assert arm1['learner_node'] == {'episode_length': 40, 'safety.max_speed_m_s': 0.05}
    assert arm1['camera_node'] == {'stride': 4}
    arm2 = load_params(path, also=('learner_node',), namespace='/arm2/')
    assert arm2['learner_node'] == {'episode_length': 25, 'safety.max_speed_m_s': 0.3,
                                    'use_sim_time': True}
    assert arm2['camera_node'] == {'stride': 7, 'use_sim_time': True}   # the nested form
    # a namespace the file has no learner section for would run the learner without them
    for namespace in ('arm3', ''):
        with pytest.raises(ValueError, match=r'sets learner_node for /arm1/learner_node, '
                           r'/arm2/learner_node but not for /(arm3/)?learner_node'):
            load_params(path, also=('learner_node',), namespace=namespace)
    # a node that will not run there (no learner in this run) is no reason to refuse
    assert 'learner_node' not in load_params(path, namespace='arm3')
    # a section of the root namespace is not a namespaced node's, as rcl reads it
    root = tmp_path / 'root.yaml'
    root.write_text('learner_node:\n  ros__parameters: {episode_length: 40}\n')
    assert load_params(root, namespace='')['learner_node'] == {'episode_length': 40}
    with pytest.raises(ValueError, match='add a /\\*\\*/learner_node section'):
        load_params(root, also=('learner_node',), namespace='arm1')
    assert load_params(root)['learner_node'] == {'episode_length': 40}   # no namespace: by name
    # sole-r1 learn has always given it to whatever namespace it runs in
    assert load_params(root, also=('learner_node',), namespace='arm1',
                       root_anywhere=True)['learner_node'] == {'episode_length': 40}


def test_sections_that_match_a_node_are_merged_in_file_order_as_rclpy_does(tmp_path):
    """A node section always beat a wildcard; rclpy lets the later one win."""
    path = tmp_path / 'order.yaml'
    path.write_text('/arm1/learner_node:\n  ros__parameters: {episode_length: 40}\n'
                    '/**:\n  ros__parameters: {episode_length: 25, stride: 3}\n')
    assert load_params(path, namespace='arm1')['learner_node'] == {'episode_length': 25}


def test_sole_r1_learn_reads_the_section_of_its_namespace(tmp_path):
    """``sole-r1 learn --namespace arm1 --params-file arms.yaml``: arm1's limits, not arm2's."""
    from sole_r1_ros.commands.learn import _params, LearnRequest
    path = tmp_path / 'arms.yaml'
    path.write_text(open(os.path.join(_CONFIG_DIR, 'sim_learn.yaml')).read() + _TWO_ARMS)
    params = _params(LearnRequest(goal='g', run_dir=tmp_path / 'run', params_file=path,
                                  namespace='arm1'), resume=False)
    assert params['learner_node']['safety.max_speed_m_s'] == 0.05
    assert params['learner_node']['episode_length'] == 40


def test_the_bag_leaves_the_disk_a_full_replays_checkpoints_need(tmp_path):
    """It stopped at 1 GB free; a filling replay's checkpoints grow to its whole frames."""
    from sole_r1_ros.bringup import bag_reserve_gb
    from sole_r1_ros.launch_utils import launch_bag_reserve
    assert bag_reserve_gb({'agent.variant': 'pixels'}) == 3.5   # 100,000 frames, 2 views, 64 px
    assert bag_reserve_gb({'agent.variant': 'pixels', 'replay.capacity': 20000,
                           'agent.image_keys': ['external']}) == 1.2
    assert bag_reserve_gb({'agent.variant': 'state'}) == 1.0   # no frames in the replay
    shipped = os.path.join(_CONFIG_DIR, 'real_robot_learn.yaml')
    assert launch_bag_reserve(shipped) == {'min_free_gb': 3.5}
    own = tmp_path / 'p.yaml'
    own.write_text('/**/recorder_node:\n  ros__parameters:\n    min_free_gb: 20.0\n')
    assert launch_bag_reserve(str(own)) == {}   # the file's own wins


def test_a_launched_recorder_writes_its_bag_beside_the_checkpoints(tmp_path):
    """Under ros2 launch the bag went to ./bags of wherever the launch was started."""
    from datetime import datetime

    from sole_r1_ros.launch_utils import launch_bag_path
    now = datetime(2026, 12, 7, 5, 30, 1)
    path = os.path.join(_CONFIG_DIR, 'real_robot_learn.yaml')
    assert launch_bag_path(path, 'runs/real_robot', now) == {
        'bag_path': os.path.join('runs/real_robot', 'bag-20261207_053001')}
    assert launch_bag_path(path, None, now) == {}
    own = tmp_path / 'p.yaml'
    own.write_text('/**/recorder_node:\n  ros__parameters:\n    bag_path: /data/bags/a\n')
    assert launch_bag_path(str(own), 'runs/real_robot', now) == {}   # the file's own wins


def test_a_params_files_wildcard_section_reaches_every_node_that_has_the_parameter(tmp_path):
    """``/**:`` (use_sim_time for all) made sole-r1 learn refuse the file: unknown node '**'."""
    path = tmp_path / 'p.yaml'
    path.write_text('/**:\n  ros__parameters:\n    use_sim_time: true\n    stride: 3\n'
                    '/**/camera_node:\n  ros__parameters:\n    stride: 2\n')
    params = load_params(path, also=('learner_node',))
    assert params['camera_node'] == {'use_sim_time': True, 'stride': 2}   # its own section wins
    assert params['learner_node'] == {'use_sim_time': True}      # it has no 'stride'
    assert set(params) == {'camera_node', 'learner_node'}        # no section made for the rest
    check_params(params)


def test_a_misspelt_name_in_a_wildcard_section_is_refused(tmp_path):
    """Each node and sole-r1 learn dropped it without a word: a safety limit's default stayed.

    ``real_robot_learn.launch.py`` reads the file the same way before it starts the learner.
    """
    path = tmp_path / 'p.yaml'
    path.write_text('/**:\n  ros__parameters:\n    safety: {max_sped_m_s: 0.05}\n'
                    '    qos_overrides: {/clock: {subscription: {depth: 1}}}\n')
    with pytest.raises(ValueError, match=r"'safety.max_sped_m_s'.*'safety.max_speed_m_s'"):
        load_params(path, also=('learner_node',))

"""Learn on a real ROS 2 arm, through the controller it runs.

Its cameras, joint states and end-effector pose in; commands out to MoveIt Servo by default
(see params_file for the others).

ros2 launch sole_r1_ros real_robot_learn.launch.py goal:="close the drawer" \
    external_camera:=/camera/color/image_raw ee_pose:=/franka/ee_pose joy:=/spacenav/joy
Other controllers: params_file:=real_robot_pose.yaml (a pose target) or
real_robot_joint.yaml (joint positions), files of the package's config folder, or a path to
your own; the params_file names the command topic, and command_topic:= replaces it. In a
simulator publishing /clock, use_sim_time:=true.
For a reward that reads the external view with the robot erased (a compact pair),
robot_model:=<its URDF> starts the self-filter (robot_mask_node; its camera calibration in
the params_file's robot_mask_node section); with an RGB-D camera, its use_depth there and
external_depth:=<the depth aligned to external_camera>.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import LifecycleNode, Node

from sole_r1_ros.bringup import check_paced, check_real_limits, load_params
from sole_r1_ros.launch_utils import (
    as_text, camera_info_of, configure_and_activate, given, namespaced_run_dir,
    params_file_argument, recorder_node, resolve_params_file, reward_arguments, reward_node)


def _learner(context, ns, params, remappings, sim_time) -> list:
    """The learner node; command_topic from the launch line where given.

    Raises:
        ValueError: the params file has the learner act unpaced (a lock-step simulator's), or
            leaves the safety box, the joint limits or the command's topic and type at the
            simulated robot's (the learner had driven a Panda on the Sawyer's box).
    """
    learner_params = load_params(params.perform(context), also=('learner_node',),
                                 namespace=ns.perform(context)).get('learner_node', {})
    check_paced(learner_params)
    check_real_limits(learner_params, given=given(context, {'command_topic': 'command_topic'}),
                      who='real_robot_learn.launch.py')
    learner = LifecycleNode(
        package='sole_r1_ros', executable='learner_node', name='learner_node', namespace=ns,
        output='screen', remappings=remappings, parameters=[params, {
            'autostart': False, 'run_dir': as_text('run_dir'), 'goal': as_text('goal'),
            'use_sim_time': sim_time, **given(context, {'command_topic': 'command_topic'})}],
        # Ctrl-C: launch sends SIGTERM after sigterm_timeout and SIGKILL 5 s later (10 s in
        # all by default), which could cut the final checkpoint (stop_budget_s) short
        sigterm_timeout=LaunchConfiguration('stop_timeout'))
    return [learner, *configure_and_activate(learner)]


def generate_launch_description() -> LaunchDescription:
    ns = LaunchConfiguration('namespace')
    params = LaunchConfiguration('params_file')
    sim_time = {'use_sim_time': LaunchConfiguration('use_sim_time')}
    external_info, wrist_info = camera_info_of('external_camera'), camera_info_of('wrist_camera')
    cameras = [('camera/external/image_raw', LaunchConfiguration('external_camera')),
               ('camera/wrist/image_raw', LaunchConfiguration('wrist_camera')),
               ('joint_states', LaunchConfiguration('joint_states'))]
    robot = cameras + [('ee_pose', LaunchConfiguration('ee_pose')),
                       ('joy', LaunchConfiguration('joy'))]
    return LaunchDescription([
        DeclareLaunchArgument('goal', description='the task in words'),
        # relative defaults: under namespace:=arm1 the nodes read /arm1/camera/..., as
        # sole-r1 learn --namespace arm1 does; an absolute name given here is taken as it is
        DeclareLaunchArgument('external_camera', default_value='camera/external/image_raw'),
        DeclareLaunchArgument('wrist_camera', default_value='camera/wrist/image_raw'),
        DeclareLaunchArgument('joint_states', default_value='joint_states'),
        DeclareLaunchArgument('ee_pose', default_value='ee_pose',
                              description='geometry_msgs/PoseStamped of the end effector'),
        DeclareLaunchArgument('joy', default_value='joy',
                              description='sensor_msgs/Joy of a SpaceMouse or gamepad'),
        DeclareLaunchArgument('command_topic', default_value='',
                              description="where arm commands go, instead of the params_file's "
                              'command_topic (which sets their type too)'),
        DeclareLaunchArgument('use_sim_time', default_value='false',
                              description="every node on the simulator's /clock (Gazebo)"),
        *reward_arguments(),
        DeclareLaunchArgument('run_dir', default_value='',
                              description="'': runs/real_robot, or runs/real_robot-NS under "
                              'namespace:=NS (each arm its own run)'),
        DeclareLaunchArgument('record', default_value='true',
                              description='record a bag (cameras, rewards, reasoning, '
                              'commands, Joy, labels): recorder_node'),
        DeclareLaunchArgument('robot_model', default_value='',
                              description="the robot's URDF or MJCF: starts the self-filter "
                              '(robot_mask_node) for erased views'),
        DeclareLaunchArgument('external_depth', default_value='camera/external/depth/image_raw',
                              description='depth aligned to external_camera, for the '
                              "self-filter's use_depth (a RealSense's aligned_depth_to_color/"
                              'image_raw)'),
        DeclareLaunchArgument('stop_timeout', default_value='20',
                              description="seconds Ctrl-C waits for the learner's final "
                              'checkpoint before SIGTERM (above learner_node.stop_budget_s)'),
        DeclareLaunchArgument('namespace', default_value=''),
        params_file_argument('real_robot_learn.yaml'),
        OpaqueFunction(function=resolve_params_file),
        OpaqueFunction(function=namespaced_run_dir, args=['runs/real_robot']),
        Node(package='sole_r1_ros', executable='camera_node', name='camera_node', namespace=ns,
             output='screen', remappings=cameras, parameters=[params, sim_time]),
        Node(package='sole_r1_ros', executable='robot_mask_node', name='robot_mask_node',
             namespace=ns, output='screen',
             condition=IfCondition(PythonExpression(
                 ["'", LaunchConfiguration('robot_model'), "' != ''"])),
             remappings=cameras[:1] + cameras[2:]
             + [('camera/external/camera_info', external_info),
                ('camera/external/depth/image_raw', LaunchConfiguration('external_depth'))],
             parameters=[params, sim_time,
                         {'robot_model': as_text('robot_model')}]),
        OpaqueFunction(function=reward_node, args=[ns, params, sim_time]),
        OpaqueFunction(function=_learner, args=[ns, params, robot, sim_time['use_sim_time']]),
        OpaqueFunction(function=recorder_node, condition=IfCondition(
            LaunchConfiguration('record')), args=[ns, params, robot + [
                ('camera/external/camera_info', external_info),
                ('camera/wrist/camera_info', wrist_info)], sim_time]),
    ])

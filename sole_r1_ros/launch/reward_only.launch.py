"""Score a live camera (or a bag played back) with SOLE-R1, without learning; optionally record."""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare

from sole_r1_ros.launch_utils import (
    configure_and_activate, given, REWARD_ARGUMENTS, reward_arguments)


def _reward(context, ns, params) -> list:
    """The reward node; backend, model and base_url from the launch line where given."""
    reward = LifecycleNode(
        package='sole_r1_ros', executable='reward_node', name='reward_node', namespace=ns,
        output='screen', parameters=[params, {
            'goal': LaunchConfiguration('goal'), 'autostart': False,
            **given(context, REWARD_ARGUMENTS)}])
    return [reward, *configure_and_activate(reward)]


def generate_launch_description() -> LaunchDescription:
    ns = LaunchConfiguration('namespace')
    params = LaunchConfiguration('params_file')
    cameras = [('camera/external/image_raw', LaunchConfiguration('external_camera')),
               ('camera/wrist/image_raw', LaunchConfiguration('wrist_camera'))]
    return LaunchDescription([
        DeclareLaunchArgument('goal', description='the task in words'),
        DeclareLaunchArgument('external_camera', default_value='/camera/external/image_raw'),
        DeclareLaunchArgument('wrist_camera', default_value='/camera/wrist/image_raw'),
        *reward_arguments(),
        DeclareLaunchArgument('record', default_value='false',
                              description='also record a bag (recorder_node)'),
        DeclareLaunchArgument('namespace', default_value=''),
        DeclareLaunchArgument('params_file', default_value=PathJoinSubstitution(
            [FindPackageShare('sole_r1_ros'), 'config', 'real_robot_learn.yaml'])),
        Node(package='sole_r1_ros', executable='camera_node', name='camera_node', namespace=ns,
             output='screen', remappings=cameras, parameters=[params]),
        OpaqueFunction(function=_reward, args=[ns, params]),
        Node(package='sole_r1_ros', executable='recorder_node', name='recorder_node',
             namespace=ns, output='screen', condition=IfCondition(LaunchConfiguration('record')),
             remappings=cameras),
    ])

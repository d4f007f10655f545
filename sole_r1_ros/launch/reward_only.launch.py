"""Score a live camera (or a bag played back) with SOLE-R1, without learning; optionally record."""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare

from sole_r1_ros.launch_utils import configure_and_activate


def generate_launch_description() -> LaunchDescription:
    ns = LaunchConfiguration('namespace')
    params = LaunchConfiguration('params_file')
    cameras = [('camera/external/image_raw', LaunchConfiguration('external_camera')),
               ('camera/wrist/image_raw', LaunchConfiguration('wrist_camera'))]
    reward = LifecycleNode(
        package='sole_r1_ros', executable='reward_node', name='reward_node', namespace=ns,
        output='screen',
        parameters=[params, {'goal': LaunchConfiguration('goal'), 'autostart': False,
                             'backend': LaunchConfiguration('reward_backend'),
                             'model': LaunchConfiguration('model'),
                             'openai.base_url': LaunchConfiguration('base_url')}])
    return LaunchDescription([
        DeclareLaunchArgument('goal', description='the task in words'),
        DeclareLaunchArgument('external_camera', default_value='/camera/external/image_raw'),
        DeclareLaunchArgument('wrist_camera', default_value='/camera/wrist/image_raw'),
        DeclareLaunchArgument('reward_backend', default_value='transformers'),
        DeclareLaunchArgument('model', default_value=''),
        DeclareLaunchArgument('base_url', default_value='http://localhost:8000/v1'),
        DeclareLaunchArgument('record', default_value='false',
                              description='also record a bag (recorder_node)'),
        DeclareLaunchArgument('namespace', default_value=''),
        DeclareLaunchArgument('params_file', default_value=PathJoinSubstitution(
            [FindPackageShare('sole_r1_ros'), 'config', 'real_robot_learn.yaml'])),
        Node(package='sole_r1_ros', executable='camera_node', name='camera_node', namespace=ns,
             output='screen', remappings=cameras, parameters=[params]),
        reward,
        Node(package='sole_r1_ros', executable='recorder_node', name='recorder_node',
             namespace=ns, output='screen', condition=IfCondition(LaunchConfiguration('record')),
             remappings=cameras),
        *configure_and_activate(reward),
    ])

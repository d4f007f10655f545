"""Learn on a real ROS 2 robot: its cameras in, its controller's command topic out.

ros2 launch sole_r1_ros real_robot_learn.launch.py goal:="close the drawer" \
    external_camera:=/camera/color/image_raw command_topic:=/forward_position_controller/commands
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare

from sole_r1_ros.launch_utils import configure_and_activate


def generate_launch_description() -> LaunchDescription:
    ns = LaunchConfiguration('namespace')
    params = LaunchConfiguration('params_file')
    cameras = [('camera/external/image_raw', LaunchConfiguration('external_camera')),
               ('camera/wrist/image_raw', LaunchConfiguration('wrist_camera')),
               ('joint_states', LaunchConfiguration('joint_states'))]
    reward = LifecycleNode(
        package='sole_r1_ros', executable='reward_node', name='reward_node', namespace=ns,
        output='screen',
        parameters=[params, {'goal': LaunchConfiguration('goal'), 'autostart': False,
                             'backend': LaunchConfiguration('reward_backend'),
                             'model': LaunchConfiguration('model'),
                             'base_url': LaunchConfiguration('base_url')}])
    learner = LifecycleNode(
        package='sole_r1_ros', executable='learner_node', name='learner_node', namespace=ns,
        output='screen', remappings=cameras,
        parameters=[params, {'autostart': False,
                             'command_topic': LaunchConfiguration('command_topic'),
                             'command_type': LaunchConfiguration('command_type'),
                             'run_dir': LaunchConfiguration('run_dir')}])
    return LaunchDescription([
        DeclareLaunchArgument('goal', description='the task in words'),
        DeclareLaunchArgument('external_camera', default_value='/camera/external/image_raw'),
        DeclareLaunchArgument('wrist_camera', default_value='/camera/wrist/image_raw'),
        DeclareLaunchArgument('joint_states', default_value='/joint_states'),
        DeclareLaunchArgument('command_topic',
                              default_value='/forward_position_controller/commands'),
        DeclareLaunchArgument('command_type', default_value='float64_multiarray',
                              description='float64_multiarray | joint_trajectory'),
        DeclareLaunchArgument('reward_backend', default_value='transformers',
                              description='transformers | openai | compact'),
        DeclareLaunchArgument('model', default_value='',
                              description='SOLE-R1-8B checkpoint folder or served model name'),
        DeclareLaunchArgument('base_url', default_value='http://localhost:8000/v1',
                              description='OpenAI-compatible endpoint (vllm serve)'),
        DeclareLaunchArgument('run_dir', default_value='runs/real_robot'),
        DeclareLaunchArgument('namespace', default_value=''),
        DeclareLaunchArgument('params_file', default_value=PathJoinSubstitution(
            [FindPackageShare('sole_r1_ros'), 'config', 'real_robot_learn.yaml'])),
        Node(package='sole_r1_ros', executable='camera_node', name='camera_node', namespace=ns,
             output='screen', remappings=cameras, parameters=[params]),
        reward, learner,
        *configure_and_activate(reward),
        *configure_and_activate(learner),
    ])

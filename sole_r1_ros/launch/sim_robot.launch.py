"""Start the simulated Meta-World robot alone (cameras, joint states, command topic, reset)."""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    params_file = PathJoinSubstitution(
        [FindPackageShare('sole_r1_ros'), 'config', 'sim_robot.yaml'])
    return LaunchDescription([
        DeclareLaunchArgument('task', default_value='drawer-close-v3',
                              description='Meta-World v3 task id'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of every node (one per robot)'),
        DeclareLaunchArgument('params_file', default_value=params_file,
                              description='YAML with the sim_robot_node parameters'),
        Node(package='sole_r1_ros', executable='sim_robot_node', name='sim_robot_node',
             namespace=LaunchConfiguration('namespace'), output='screen',
             parameters=[LaunchConfiguration('params_file'),
                         {'task': LaunchConfiguration('task')}]),
    ])

"""Start the simulated Meta-World robot alone (cameras, joint states, command topic, reset)."""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from sole_r1_ros.launch_utils import params_file_argument, resolve_params_file


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument('task', default_value='drawer-close-v3',
                              description='Meta-World v3 task id'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of every node (one per robot)'),
        params_file_argument('sim_robot.yaml'),
        OpaqueFunction(function=resolve_params_file),
        Node(package='sole_r1_ros', executable='sim_robot_node', name='sim_robot_node',
             namespace=LaunchConfiguration('namespace'), output='screen',
             parameters=[LaunchConfiguration('params_file'),
                         {'task': LaunchConfiguration('task')}]),
    ])

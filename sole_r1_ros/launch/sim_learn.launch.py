"""Learn a Meta-World task in the MuJoCo simulator from video progress rewards alone.

sim_robot_node -> camera_node -> reward_node (lifecycle) -> learner_node (lifecycle) -> commands.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare

from sole_r1_ros.launch_utils import configure_and_activate, reward_arguments, reward_node


def generate_launch_description() -> LaunchDescription:
    ns = LaunchConfiguration('namespace')
    params = LaunchConfiguration('params_file')
    learner = LifecycleNode(
        package='sole_r1_ros', executable='learner_node', name='learner_node', namespace=ns,
        output='screen', parameters=[params, {'autostart': False,
                                              'run_dir': LaunchConfiguration('run_dir')}])
    return LaunchDescription([
        DeclareLaunchArgument('goal', default_value='close the drawer'),
        DeclareLaunchArgument('task', default_value='drawer-close-v3',
                              description='Meta-World v3 task id'),
        *reward_arguments(),
        DeclareLaunchArgument('run_dir', default_value='runs/sim_learn'),
        DeclareLaunchArgument('namespace', default_value=''),
        DeclareLaunchArgument('params_file', default_value=PathJoinSubstitution(
            [FindPackageShare('sole_r1_ros'), 'config', 'sim_learn.yaml'])),
        Node(package='sole_r1_ros', executable='sim_robot_node', name='sim_robot_node',
             namespace=ns, output='screen',
             parameters=[params, {'task': LaunchConfiguration('task')}]),
        Node(package='sole_r1_ros', executable='camera_node', name='camera_node', namespace=ns,
             output='screen', parameters=[params]),
        OpaqueFunction(function=reward_node, args=[ns, params]),
        learner,
        *configure_and_activate(learner),
    ])

"""Learn a Meta-World task in the MuJoCo simulator from video progress rewards alone.

sim_robot_node -> camera_node -> reward_node (lifecycle) -> learner_node (lifecycle) -> commands.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from sole_r1_ros.launch_utils import (
    as_text, configure_and_activate, namespaced_run_dir, params_file_argument,
    resolve_params_file, reward_arguments, reward_node, task_goal)


def _camera_node(context, ns, params) -> list:
    """The camera node; it sends the simulator's truth with each query for the oracle reward.

    ``reward_backend:=oracle`` (the ground-truth baseline) scores that truth, and without it
    every query failed; ``sole-r1 learn --reward oracle`` sets the same.
    """
    oracle = LaunchConfiguration('reward_backend').perform(context) == 'oracle'
    return [Node(package='sole_r1_ros', executable='camera_node', name='camera_node',
                 namespace=ns, output='screen',
                 parameters=[params, {'use_ground_truth': True}] if oracle else [params])]


def generate_launch_description() -> LaunchDescription:
    ns = LaunchConfiguration('namespace')
    params = LaunchConfiguration('params_file')
    learner = LifecycleNode(
        package='sole_r1_ros', executable='learner_node', name='learner_node', namespace=ns,
        output='screen', parameters=[params, {
            'autostart': False, 'run_dir': as_text('run_dir'), 'goal': task_goal()}],
        sigterm_timeout='20')   # the final checkpoint, as in real_robot_learn.launch.py
    return LaunchDescription([
        DeclareLaunchArgument('goal', default_value='', description=(
            "what to learn, in words ('': the task's own goal, e.g. 'close the drawer')")),
        DeclareLaunchArgument('task', default_value='drawer-close-v3',
                              description='Meta-World v3 task id'),
        *reward_arguments(),
        DeclareLaunchArgument('run_dir', default_value='',
                              description="'': runs/sim_learn, or runs/sim_learn-NS under "
                              'namespace:=NS (each arm its own run)'),
        DeclareLaunchArgument('namespace', default_value=''),
        params_file_argument('sim_learn.yaml'),
        OpaqueFunction(function=resolve_params_file),
        OpaqueFunction(function=namespaced_run_dir, args=['runs/sim_learn']),
        Node(package='sole_r1_ros', executable='sim_robot_node', name='sim_robot_node',
             namespace=ns, output='screen',
             parameters=[params, {'task': LaunchConfiguration('task')}]),
        OpaqueFunction(function=_camera_node, args=[ns, params]),
        # the task's goal here too: the reward node refuses an empty one, and died at start
        OpaqueFunction(function=reward_node, args=[ns, params, {'goal': task_goal()}]),
        learner,
        *configure_and_activate(learner),
    ])

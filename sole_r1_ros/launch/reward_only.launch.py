"""Score a live camera (or a bag played back) with SOLE-R1, without learning; optionally record.

A bag played back: ``ros2 bag play BAG --clock`` and ``use_sim_time:=true`` here, so that the
nodes' episodes and the frames are on one clock.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from sole_r1_ros.launch_utils import (
    camera_info_of, params_file_argument, resolve_params_file, reward_arguments, reward_node)


def generate_launch_description() -> LaunchDescription:
    ns = LaunchConfiguration('namespace')
    params = LaunchConfiguration('params_file')
    sim_time = {'use_sim_time': LaunchConfiguration('use_sim_time')}
    cameras = [('camera/external/image_raw', LaunchConfiguration('external_camera')),
               ('camera/wrist/image_raw', LaunchConfiguration('wrist_camera')),
               ('joint_states', LaunchConfiguration('joint_states'))]
    infos = [(f'camera/{view}/camera_info', camera_info_of(f'{view}_camera'))
             for view in ('external', 'wrist')]
    return LaunchDescription([
        DeclareLaunchArgument('goal', description='the task in words'),
        DeclareLaunchArgument('external_camera', default_value='camera/external/image_raw'),
        DeclareLaunchArgument('wrist_camera', default_value='camera/wrist/image_raw'),
        DeclareLaunchArgument('joint_states', default_value='joint_states',
                              description="the arm's joints: the gripper's moves are queried "
                                          'and recorded'),
        DeclareLaunchArgument('use_sim_time', default_value='false',
                              description='every node on /clock (a bag played with --clock)'),
        *reward_arguments(),
        DeclareLaunchArgument('record', default_value='false',
                              description='also record a bag (recorder_node)'),
        DeclareLaunchArgument('namespace', default_value=''),
        params_file_argument('real_robot_learn.yaml'),
        OpaqueFunction(function=resolve_params_file),
        Node(package='sole_r1_ros', executable='camera_node', name='camera_node', namespace=ns,
             output='screen', remappings=cameras, parameters=[params, sim_time]),
        OpaqueFunction(function=reward_node, args=[ns, params, sim_time]),
        Node(package='sole_r1_ros', executable='recorder_node', name='recorder_node',
             namespace=ns, output='screen', condition=IfCondition(LaunchConfiguration('record')),
             remappings=cameras + infos, parameters=[params, sim_time]),   # its extra_topics
    ])

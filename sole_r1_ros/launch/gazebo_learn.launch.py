"""Learn on a Gazebo (gz sim) robot driven by gz_ros2_control; needs a ROS install with Gazebo.

Expects a robot description (URDF/xacro already expanded) with the gz_ros2_control plugin, a
`forward_position_controller` (forward_command_controller, position interfaces) and a
`joint_state_broadcaster` in its controllers YAML, and two gz cameras publishing on the gz topics
given below; ros_gz_bridge brings them to /camera/external/image_raw and
/camera/wrist/image_raw. Then the same nodes as on a real robot run (real_robot_learn.launch.py).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import Command, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    ns = LaunchConfiguration('namespace')
    # a string, as it is: read as YAML, a URDF with ': ' anywhere (a comment) stopped the launch
    description = ParameterValue(
        Command(['cat ', LaunchConfiguration('robot_description_file')]), value_type=str)
    gz_sim = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution(
            [FindPackageShare('ros_gz_sim'), 'launch', 'gz_sim.launch.py'])),
        launch_arguments={'gz_args': ['-r ', LaunchConfiguration('world')]}.items())
    learn = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution(
            [FindPackageShare('sole_r1_ros'), 'launch', 'real_robot_learn.launch.py'])),
        # An include sets these for real_robot_learn (whatever the command line said there),
        # so each is an argument of this file too, passed on.
        launch_arguments={**{name: LaunchConfiguration(name) for name in (
            'goal', 'namespace', 'command_topic', 'reward_backend', 'model', 'base_url',
            'run_dir', 'record', 'params_file')}, 'use_sim_time': 'true'}.items())
    return LaunchDescription([
        DeclareLaunchArgument('goal', description='the task in words'),
        DeclareLaunchArgument('robot_description_file',
                              description='expanded URDF with the gz_ros2_control plugin'),
        DeclareLaunchArgument('world', default_value='empty.sdf'),
        DeclareLaunchArgument('external_camera_gz_topic', default_value='/external_camera'),
        DeclareLaunchArgument('wrist_camera_gz_topic', default_value='/wrist_camera'),
        # '' keeps params_file's (gazebo_learn.yaml: transformers); a default here overrode it
        DeclareLaunchArgument('reward_backend', default_value=''),
        DeclareLaunchArgument('model', default_value=''),
        DeclareLaunchArgument('base_url', default_value='',
                              description="vllm serve's endpoint, for reward_backend:=openai"),
        DeclareLaunchArgument('command_topic', default_value='',
                              description="'' keeps params_file's (gazebo_learn.yaml: "
                              '/forward_position_controller/commands)'),
        DeclareLaunchArgument('run_dir', default_value='runs/gazebo_learn',
                              description="not real_robot_learn's: a run resumes what it finds"),
        DeclareLaunchArgument('record', default_value='true'),
        DeclareLaunchArgument('params_file', default_value=PathJoinSubstitution(
            [FindPackageShare('sole_r1_ros'), 'config', 'gazebo_learn.yaml'])),
        DeclareLaunchArgument('namespace', default_value=''),
        gz_sim,
        Node(package='robot_state_publisher', executable='robot_state_publisher',
             name='robot_state_publisher', namespace=ns,
             parameters=[{'robot_description': description, 'use_sim_time': True}]),
        Node(package='ros_gz_sim', executable='create', name='spawn_robot', namespace=ns,
             arguments=['-topic', 'robot_description', '-name', 'robot']),
        Node(package='ros_gz_bridge', executable='parameter_bridge', name='camera_bridge',
             namespace=ns,
             arguments=[[LaunchConfiguration('external_camera_gz_topic'),
                         '@sensor_msgs/msg/Image[gz.msgs.Image'],
                        [LaunchConfiguration('wrist_camera_gz_topic'),
                         '@sensor_msgs/msg/Image[gz.msgs.Image'],
                        '/clock@rosgraph_msgs/msg/Clock[gz.msgs.Clock'],
             remappings=[(LaunchConfiguration('external_camera_gz_topic'),
                          'camera/external/image_raw'),   # in the namespace, as the learner
                         (LaunchConfiguration('wrist_camera_gz_topic'),
                          'camera/wrist/image_raw')]),
        Node(package='controller_manager', executable='spawner', name='spawn_joint_states',
             namespace=ns, arguments=['joint_state_broadcaster']),
        Node(package='controller_manager', executable='spawner', name='spawn_forward_controller',
             namespace=ns, arguments=['forward_position_controller']),
        learn,
    ])

"""Small helpers for our launch files (imported only by them, so launch_ros stays optional)."""
import os
from typing import Mapping

REWARD_ARGUMENTS = {'backend': 'reward_backend', 'model': 'model', 'openai.base_url': 'base_url'}
'''The reward node's parameters a launch line may set: {parameter: launch argument}.'''


def reward_arguments() -> list:
    """The launch arguments of ``REWARD_ARGUMENTS``; '' (their default) keeps the params_file's."""
    from launch.actions import DeclareLaunchArgument

    return [
        DeclareLaunchArgument('reward_backend', default_value='', description=(
            "transformers | openai | compact | oracle (default: the params_file's "
            'reward_node.backend)')),
        DeclareLaunchArgument('model', default_value='', description=(
            'SOLE-R1 checkpoint folder, served model name or compact .pt file (default: the '
            "params_file's)")),
        DeclareLaunchArgument('base_url', default_value='', description=(
            "vllm serve's OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (default: "
            "the params_file's)"))]


def params_file_argument(default_name: str):
    """The ``params_file`` launch argument: a path, or a file name in the package's config/."""
    from launch.actions import DeclareLaunchArgument
    from launch.substitutions import PathJoinSubstitution
    from launch_ros.substitutions import FindPackageShare

    return DeclareLaunchArgument('params_file', default_value=PathJoinSubstitution(
        [FindPackageShare('sole_r1_ros'), 'config', default_name]), description=(
        "YAML of every node: a path, or the name of one in the package's config folder "
        '(real_robot_pose.yaml)'))


def resolve_params_file(context) -> list:
    """Make ``params_file`` a path that exists, or stop the launch saying so.

    launch_ros only warns of a parameter file that is not there and starts every node on its
    code defaults (the simulated arm's joint names and safety box on a real arm). A bare name
    is looked up in the package's config folder. For an ``OpaqueFunction`` placed before the
    nodes: the ``SetLaunchConfiguration`` it returns applies to all that follow.
    """
    from ament_index_python.packages import get_package_share_directory
    from launch.actions import SetLaunchConfiguration
    from launch.substitutions import LaunchConfiguration

    given_path = LaunchConfiguration('params_file').perform(context)
    config_dir = os.path.join(get_package_share_directory('sole_r1_ros'), 'config')
    for candidate in (given_path, os.path.join(config_dir, given_path)):
        if os.path.isfile(candidate):
            return [SetLaunchConfiguration('params_file', os.path.abspath(candidate))]
    shipped = sorted(f for f in os.listdir(config_dir) if f.endswith('.yaml'))
    raise RuntimeError(f"params_file {given_path!r} is not a file, nor one of the package's "
                       f'config files ({", ".join(shipped)})')


def run_dir_of(base: str, namespace: str) -> str:
    """``base``, or ``base-arm1`` in namespace 'arm1' (``a/b``: ``base-a-b``).

    One default for every namespace had a second arm resume the first arm's run: its policy,
    its replay, and its checkpoints rotated away.
    """
    name = namespace.strip('/').replace('/', '-')
    return f'{base}-{name}' if name else base


def namespaced_run_dir(context, base: str) -> list:
    """Set ``run_dir`` where the launch line left it '': ``run_dir_of(base, namespace)``.

    For an ``OpaqueFunction`` placed before the nodes, as ``resolve_params_file``.
    """
    from launch.actions import SetLaunchConfiguration
    from launch.substitutions import LaunchConfiguration

    if LaunchConfiguration('run_dir').perform(context):
        return []
    run_dir = run_dir_of(base, LaunchConfiguration('namespace').perform(context))
    if moved := moved_default_run(base, run_dir):
        import launch.logging
        launch.logging.get_logger('sole_r1_ros').warning(moved)
    return [SetLaunchConfiguration('run_dir', run_dir)]


def moved_default_run(base: str, run_dir: str) -> str:
    """What to say where a namespace's run now defaults to ``run_dir`` but ``base`` holds one.

    Until 2026-12-07 every namespace's default was ``base``: a run made there under a
    namespace would otherwise start over in the new folder without a word.
    """
    if run_dir == base or not os.path.isdir(os.path.join(base, 'checkpoints')) or \
            os.path.isdir(os.path.join(run_dir, 'checkpoints')):
        return ''
    return (f'{run_dir} is the run folder of this namespace; {base}, the folder of every '
            f'namespace before 2026-12-07, holds a run: give run_dir:={base} (--run-dir '
            f'{base}) to go on with it')


def as_text(argument: str):
    """A launch argument as a string parameter (``goal:=on`` is the text 'on', not a bool).

    launch_ros reads a parameter's value as YAML: ``goal:="task: close it"`` became a dict and
    stopped the launch, ``goal:=on`` a bool the node refused.
    """
    from launch.substitutions import LaunchConfiguration
    from launch_ros.parameter_descriptions import ParameterValue

    return ParameterValue(LaunchConfiguration(argument), value_type=str)


def goal_of(goal: str, task: str) -> str:
    """The goal a simulated run learns: ``goal`` where given, else the Meta-World task's own.

    ``task:=window-close-v3`` alone kept the default goal "close the drawer": the reward model
    and the learner judged another task than the simulator ran.

    Raises:
        ValueError: no goal given and a task that has none.
    """
    from sole_r1_ros.sim.tasks import TASK_GOALS

    if goal.strip():
        return goal
    if task not in TASK_GOALS:
        raise ValueError(f'no goal given and no known goal for the task {task!r}: pass '
                         f'goal:="..." or a Meta-World v3 task such as drawer-close-v3')
    return TASK_GOALS[task]


def task_goal():
    """The ``goal`` launch argument as the learner's parameter, '' meaning ``task``'s goal."""
    from launch.substitution import Substitution
    from launch.substitutions import LaunchConfiguration
    from launch_ros.parameter_descriptions import ParameterValue

    class _TaskGoal(Substitution):
        def perform(self, context) -> str:
            return goal_of(LaunchConfiguration('goal').perform(context),
                           LaunchConfiguration('task').perform(context))

    return ParameterValue(_TaskGoal(), value_type=str)


def camera_info_of(argument: str):
    """The camera_info topic beside the image topic a launch argument names (same folder)."""
    from launch.substitutions import LaunchConfiguration, PythonExpression

    return PythonExpression(
        ["'", LaunchConfiguration(argument), "'.rsplit('/', 1)[0] + '/camera_info'"])


def given(context, arguments: Mapping[str, str]) -> dict:
    """``{parameter: value}`` of the launch arguments (``{parameter: argument}``) set non-empty.

    A launch argument handed to a node as a parameter replaces the params_file's value, even
    with its default: an argument the params_file may set instead defaults to '' and is passed
    on only when given (call from an ``OpaqueFunction``, which has the context).
    """
    from launch.substitutions import LaunchConfiguration

    values = {parameter: LaunchConfiguration(argument).perform(context)
              for parameter, argument in arguments.items()}
    return {parameter: value for parameter, value in values.items() if value}


def recorder_extra_topics(params_path: str, command_topic: str = '',
                          namespace: str | None = None, root_anywhere: bool = False
                          ) -> list[str]:
    """The recorder's ``extra_topics``: the params file's, and where the learner's commands go.

    ``command_topic``: the launch line's ``command_topic:=``, which only the learner was
    given: the bag recorded the params file's topic, where nothing was sent. ``namespace``:
    the nodes', whose sections of the file they get (``bringup.load_params``).
    """
    from sole_r1_ros.bringup import command_topics, load_params
    params = load_params(params_path, namespace=namespace, root_anywhere=root_anywhere)
    learner = dict(params.get('learner_node', {}))
    if command_topic:
        learner['command_topic'] = command_topic
    return command_topics({**params, 'learner_node': learner})


def recorder_node(context, namespace, params, remappings, extra: Mapping | None = None
                  ) -> list:
    """The recorder, recording the arm's commands where the learner sends them.

    For an ``OpaqueFunction`` (``args=[namespace, params_file, remappings]``). Where the launch
    has a ``run_dir`` and the params file names no ``bag_path``, the bag goes beside the
    checkpoints, ``<run_dir>/bag-<date-time>``, as ``sole-r1 learn`` puts it (it went to
    ``./bags`` of wherever the launch was started).
    """
    from datetime import datetime

    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    params_file = LaunchConfiguration('params_file').perform(context)
    ns = LaunchConfiguration('namespace').perform(context)
    topics = recorder_extra_topics(params_file,
                                   LaunchConfiguration('command_topic').perform(context), ns)
    bag = launch_bag_path(params_file, context.launch_configurations.get('run_dir'),
                          datetime.now(), ns)
    return [Node(package='sole_r1_ros', executable='recorder_node', name='recorder_node',
                 namespace=namespace, output='screen', remappings=remappings,
                 parameters=[params, {'extra_topics': topics, **bag,
                                      **launch_bag_reserve(params_file, ns), **(extra or {})}])]


def launch_bag_reserve(params_file: str, namespace: str | None = None) -> dict:
    """The disk the learner's checkpoints need as ``{'min_free_gb': GB}``; {} if the file says.

    ``bringup.bag_reserve_gb``: the bag stopped at 1 GB free, short of a filling replay.
    """
    from sole_r1_ros.bringup import bag_reserve_gb, load_params

    params = load_params(params_file, also=('recorder_node',), namespace=namespace)
    if 'min_free_gb' in params.get('recorder_node', {}):
        return {}
    return {'min_free_gb': bag_reserve_gb(params.get('learner_node', {}))}


def launch_bag_path(params_file: str, run_dir: str | None, now,
                    namespace: str | None = None) -> dict:
    """``{'bag_path': <run_dir>/bag-<date-time>}``, or {} where the params file names one."""
    from sole_r1_ros.bringup import load_params

    if not run_dir or load_params(params_file, also=('recorder_node',), namespace=namespace).get(
            'recorder_node', {}).get('bag_path'):
        return {}
    return {'bag_path': os.path.join(run_dir, f'bag-{now:%Y%m%d_%H%M%S}')}


def reward_node(context, namespace, params, extra: Mapping | None = None) -> list:
    """The reward node, configured and activated: the goal, ``REWARD_ARGUMENTS`` where given.

    For an ``OpaqueFunction`` (``args=[namespace, params_file]``), which has the context.
    """
    from launch_ros.actions import LifecycleNode

    reward = LifecycleNode(
        package='sole_r1_ros', executable='reward_node', name='reward_node',
        namespace=namespace, output='screen', parameters=[params, {
            'goal': as_text('goal'), 'autostart': False, **(extra or {}),
            **given(context, REWARD_ARGUMENTS)}])
    return [reward, *configure_and_activate(reward)]


def configure_and_activate(lifecycle_node) -> list:
    """Launch entities that configure ``lifecycle_node`` at start and activate it once inactive.

    Only a configure activates it: a person's ``deactivate`` (inactive again, from
    deactivating) must hold the robot, not be undone a moment later. A configure that fails
    ends the launch: a learner with no reward node, or a reward node with no learner, would
    run on without learning anything. Anchor: ros2/demos lifecycle_py and nav2's lifecycle
    manager do the same two steps.
    """
    from launch.actions import EmitEvent, LogInfo, RegisterEventHandler
    from launch.events import matches_action, Shutdown
    from launch_ros.event_handlers import OnStateTransition
    from launch_ros.events.lifecycle import ChangeState
    from lifecycle_msgs.msg import Transition

    def change(transition_id: int) -> EmitEvent:
        return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(lifecycle_node),
                                           transition_id=transition_id))

    failed = (f'{lifecycle_node.node_executable} failed to configure (its log above says why): '
              'stopping the launch')
    return [
        RegisterEventHandler(OnStateTransition(
            target_lifecycle_node=lifecycle_node, start_state='configuring',
            goal_state='inactive', entities=[change(Transition.TRANSITION_ACTIVATE)])),
        RegisterEventHandler(OnStateTransition(
            target_lifecycle_node=lifecycle_node, start_state='configuring',
            goal_state='unconfigured',
            entities=[LogInfo(msg=failed), EmitEvent(event=Shutdown(reason=failed))])),
        change(Transition.TRANSITION_CONFIGURE),
    ]

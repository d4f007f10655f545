"""Start the node graph as one process per node, from the YAML the launch files use.

What ``ros2 launch sim_learn.launch.py`` does, for machines without launch_ros: each node runs in
its own interpreter, so the simulator, the reward model and the learner use every core and never
share a GIL (measured in ``bench/bench_loop.py``), with one parameters file, and the lifecycle
nodes configure and activate themselves. Parameters are checked against the nodes' config
classes before anything starts. ``stop`` asks each node to finish (SIGINT, once): the learner
holds the robot and writes a checkpoint, the recorder closes its bag; what is still running at
the deadline is killed.
"""
import difflib
import importlib
import functools
import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import time
from typing import Any, Mapping, Sequence

import yaml

from sole_r1_ros.configuration import check_value, flatten, from_mapping, specs

NODE_MODULES = {
    'sim_robot_node': 'sole_r1_ros.nodes.sim_robot_node',
    'camera_node': 'sole_r1_ros.nodes.camera_node',
    'robot_mask_node': 'sole_r1_ros.nodes.robot_mask_node',
    'reward_node': 'sole_r1_ros.nodes.reward_node',
    'learner_node': 'sole_r1_ros.nodes.learner_node',
    'recorder_node': 'sole_r1_ros.nodes.recorder_node',
}
# Stop order: the learner first (its last command, the hold, must reach the robot and the bag),
# the recorder last (it records everything up to the end).
_STOP_ORDER = ('learner_node', 'camera_node', 'robot_mask_node', 'reward_node', 'sim_robot_node',
               'recorder_node')


def config_dir() -> Path:
    """The package's ``config/`` folder: installed (ament index), else the source tree.

    Raises:
        FileNotFoundError: neither exists (a broken install).
    """
    try:
        from ament_index_python.packages import get_package_share_directory
        installed = Path(get_package_share_directory('sole_r1_ros')) / 'config'
        if installed.is_dir():
            return installed
    except (ImportError, LookupError, ValueError):
        pass
    source = Path(__file__).resolve().parents[1] / 'config'
    if source.is_dir():
        return source
    raise FileNotFoundError('cannot find the sole_r1_ros config folder: install the package '
                            '(colcon build / pip install .) or run from a source checkout')


def check_paced(learner: Mapping[str, Any]) -> None:
    """Refuse a real arm's learner that does not pace its commands to the control rate.

    ``pace_to_control_rate: false`` is for a lock-step simulator, whose steps take simulated
    time. On a real arm commands then go out as fast as frames come, while every speed limit
    assumes one per control period: 5 Hz control and 20 Hz cameras moved the joints at 0.78
    rad/s under a 0.2 rad/s limit.

    Raises:
        ValueError: ``learner`` (the learner_node's parameters) sets it false.
    """
    if learner.get('pace_to_control_rate') is False:
        raise ValueError('learner_node.pace_to_control_rate is false: that is for a lock-step '
                         'simulator only; on a real arm (or Gazebo) commands would go out as '
                         'fast as camera frames come, past every speed limit. Remove it from '
                         'the params file')


def check_real_limits(learner: Mapping[str, Any], given: Sequence[str] = (),
                      who: str = '--real') -> None:
    """Refuse a real arm whose params file leaves its limits at the simulator's.

    The code defaults are the simulated Sawyer's workspace in Meta-World's world frame
    (x from -0.5 m: behind and through a Panda's base in ``panda_link0``) and its joints.
    ``given`` names parameters set elsewhere (a launch argument); ``who`` leads the message
    (``sole-r1 learn --real``, ``real_robot_learn.launch.py``: both refuse).

    Raises:
        ValueError: the box (end-effector actions) or the joint limits are not set, or the
            reset service, the command topic or its type.
    """
    layout = learner.get('action_layout', 'ee_delta')
    needed = (('joints.lower', 'joints.upper') if layout == 'joint_position'
              else ('safety.box_lower', 'safety.box_upper'))
    missing = [name for name in needed if name not in learner]
    if missing:
        raise ValueError(f'{who}: the params file sets no learner_node {" / ".join(missing)}: '
                         "the defaults are the simulated Sawyer's, not your arm's. Set them "
                         'for your workspace (config/real_robot_learn.yaml, '
                         'real_robot_joint.yaml show how)')
    # the simulator's defaults of how commands go out and how episodes reset: on a real arm
    # the reset failed after every episode and episodes ran back to back
    for name in ('reset_service', 'command_topic', 'command.command_type'):
        if name not in learner and name not in given:
            raise ValueError(f'{who}: the params file sets no learner_node {name}: its default '
                             "is the simulated robot's. Set it for your arm (reset_service: '' "
                             'for a person who resets the scene; config/real_robot_learn.yaml '
                             'shows the others)')


def load_params(path: str | os.PathLike, also: Sequence[str] = (),
                namespace: str | None = None, root_anywhere: bool = False
                ) -> dict[str, dict[str, Any]]:
    """Node name -> flat parameters ('agent.lr') from a ROS 2 parameters YAML file.

    A ``/**`` section's parameters go to each node of the file, and of ``also`` (the nodes
    that run without a section), that has them. Sections that match a node are merged in file
    order, the last one winning, as rclpy does. ``sole-r1 learn --params-file`` refused a
    wildcard section ("unknown node '**'").

    With ``namespace`` (the run's, '' for the root), a section is read as rcl matches it to
    the node ``/<namespace>/<node>`` (``*`` and ``**`` wildcards, nested namespace levels):
    a file with ``/arm1/learner_node`` and ``/arm2/learner_node`` gave arm1 whichever came
    last, arm2's safety limits included. Without it, each section by its node name alone.
    ``root_anywhere``: a section naming no namespace (``learner_node:``) is for any, as
    ``sole-r1 learn`` has always given it (it writes ``/**/<node>`` for the nodes it starts);
    rcl gives it to the root namespace's node only.

    Raises:
        ValueError: the file is not a parameters file, or (with ``namespace``) it sets a node
            of ``also`` for other namespaces only, which the node would not get.
    """
    try:
        with open(path, encoding='utf-8') as stream:
            data = yaml.safe_load(stream) or {}
    except FileNotFoundError:
        raise
    except (OSError, yaml.YAMLError) as exc:   # a folder, unreadable, or not YAML
        raise ValueError(f'cannot read the parameters file {path}: '
                         f'{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}'
                         ) from exc
    if not isinstance(data, dict):
        raise ValueError(f'{path} is not a ROS 2 parameters file (node: ros__parameters: ...)')
    sections = list(_node_sections(data, path))
    named = [key.split('/')[-1] for key, _ in sections]
    targets = [n for n in NODE_MODULES if n in named or n in also]   # what a wildcard reaches
    nodes: dict[str, dict[str, Any]] = {}
    matched: set[str] = set()   # nodes a section of their own name matched
    elsewhere: dict[str, list[str]] = {}   # node -> its sections for other namespaces
    for key, values in sections:
        name = key.split('/')[-1]
        if name in ('*', '**'):   # /**: for every node, as rcl reads it
            _check_declared(path, values)
            if namespace is None or _section_matches(key, _node_fqn(namespace, name)):
                declared = _declared_parameters()   # each node takes what it declares
                for node in targets:
                    nodes.setdefault(node, {}).update(
                        {k: v for k, v in values.items() if k in declared[node]})
        elif (namespace is None or _section_matches(key, _node_fqn(namespace, name))
              or (root_anywhere and len([t for t in key.split('/') if t]) == 1)):
            nodes.setdefault(name, {}).update(values)
            matched.add(name)
        else:
            elsewhere.setdefault(name, []).append(key)
    for name, keys in elsewhere.items():
        if name in also and name not in matched:
            sections_named = ', '.join('/' + key.lstrip('/') for key in keys)
            raise ValueError(
                f'{path} sets {name} for {sections_named} but not for '
                f'{_node_fqn(namespace, name)}, which would run without them: add a '
                f'/**/{name} section (any namespace) or {_node_fqn(namespace, name)}')
    return nodes


def _node_sections(data: Mapping, path, prefix: str = ''):
    """Yield (key, flat parameters) of each node section; nested namespace levels joined.

    ``arm1: {learner_node: {ros__parameters: ...}}`` is rcl's nested form of
    ``/arm1/learner_node``.
    """
    for key, section in data.items():
        joined = f'{prefix}/{str(key).strip("/")}' if prefix else str(key)
        if (isinstance(section, dict) and 'ros__parameters' not in section and section
                and all(isinstance(inner, dict) for inner in section.values())):
            yield from _node_sections(section, path, joined)
            continue
        if not isinstance(section or {}, dict) or not isinstance(
                (section or {}).get('ros__parameters', {}), dict):
            raise ValueError(f'{path}: {joined} is not a node section (node: ros__parameters: '
                             f'name: value ...), got {section!r}'[:300])
        yield joined, flatten((section or {}).get('ros__parameters', {}))


def _node_fqn(namespace: str | None, name: str) -> str:
    """'/arm1/learner_node' of namespace 'arm1' (or '/arm1/'), '/learner_node' of ''."""
    return '/' + '/'.join([t for t in (namespace or '').split('/') if t] + [name])


def _section_matches(key: str, fqn: str) -> bool:
    """Whether a parameters file's section ``key`` is the node ``fqn``, as rcl matches them.

    A key without a leading '/' is absolute all the same; ``*`` is one name, ``**`` any
    number (none included).
    """
    pattern = ''.join('(/[^/]+)*' if token == '**' else '/[^/]+' if token == '*'
                      else '/' + re.escape(token) for token in key.split('/') if token)
    return re.fullmatch(pattern or '/', fqn) is not None


@functools.lru_cache(maxsize=1)
def _declared_parameters() -> dict[str, set[str]]:
    """Node -> the parameter names it declares (use_sim_time included)."""
    return {node: {s.name for cls, prefix in node_sections(node).values()
                   for s in specs(cls, prefix)} | {'use_sim_time'}
            for node in NODE_MODULES}


def _check_declared(path, values: Mapping[str, Any]) -> None:
    """Refuse a wildcard section's parameter that no node declares (a typo).

    Each node and sole-r1 learn had dropped it without a word, and a misspelt safety limit
    left the default in force.
    """
    everyone = set().union(*_declared_parameters().values())
    for name in values:
        if name not in everyone and not name.startswith('qos_overrides.'):
            close = difflib.get_close_matches(name, sorted(everyone), n=3)
            hint = f'; did you mean {close}?' if close else ''
            raise ValueError(f'{path}: the wildcard section sets {name!r}, which no node '
                             f'declares{hint}')


def bag_reserve_gb(learner: Mapping[str, Any]) -> float:
    """The free disk a run's bag leaves its learner: a full replay's frames and 1 GB more.

    The bag stopped at 1 GB free, but the checkpoints of a filling replay grow to its whole
    frames (2.5 GB at 100,000 frames of two 64 px views): a robot's raw cameras (55 MB/s for
    two 640x480 at 30 Hz) filled the disk first, and every later checkpoint failed.
    """
    from sole_r1_ros.rl.config import DrQConfig, ReplayConfig
    from sole_r1_ros.rl.replay import replay_bytes
    if learner.get('agent.variant', DrQConfig.variant) != 'pixels':
        return 1.0
    views = len(learner.get('agent.image_keys', DrQConfig.image_keys))
    frames = replay_bytes(learner.get('replay.capacity', ReplayConfig.capacity), 0, 0, views,
                          learner.get('agent.image_size', DrQConfig.image_size))
    return round(1.0 + frames / 1e9, 1)


def command_topics(params: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The recorder's ``extra_topics`` and wherever this learner sends arm and gripper commands.

    A real arm's controller topics are the user's (``/servo_node/...``,
    ``/cartesian_impedance_controller/...``): the bag must hold the commands the robot got.
    """
    from sole_r1_ros.nodes.command_output import MESSAGE_TYPES
    from sole_r1_ros.nodes.learner_config import LearnerNodeConfig
    from sole_r1_ros.rl import CommandConfig
    learner = params['learner_node']
    topics = list(params.get('recorder_node', {}).get('extra_topics', ()))
    sent = [(learner.get('command_topic', LearnerNodeConfig.command_topic),
             learner.get('command.command_type', CommandConfig.command_type))]
    gripper = learner.get('command.gripper_command_type', CommandConfig.gripper_command_type)
    if gripper != 'none':
        sent.append((learner.get('gripper_topic', LearnerNodeConfig.gripper_topic), gripper))
    named = {kind: f"{cls.__module__.split('.')[0]}/msg/{cls.__name__}"
             for kind, cls in MESSAGE_TYPES.items()}
    sent_topics = [f'{topic}={named[kind]}' for topic, kind in sent]
    return topics + [t for t in sent_topics if t not in topics]   # once: the YAML may list it


def node_sections(node: str) -> dict[str, tuple[type, str]]:
    """The config classes (and prefixes) behind the parameters of ``node``."""
    if node not in NODE_MODULES:
        raise ValueError(f'unknown node {node!r}; nodes: {sorted(NODE_MODULES)}')
    return importlib.import_module(NODE_MODULES[node]).SECTIONS


def check_params(params: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Check every node's parameters as the node would, before anything starts.

    Returns the values converted to the types rclpy expects (ints of float fields as floats,
    tuples as lists).

    Raises:
        ValueError: an unknown node or parameter (with the closest names), a wrong type, a value
            out of range, or a combination a config rejects; the message names the node, the
            parameter and its description.
    """
    import difflib

    checked = {}
    for node, values in params.items():
        sections = node_sections(node)
        fields = {s.name: s for cls, prefix in sections.values() for s in specs(cls, prefix)}
        out = {}
        for name, value in values.items():
            if name == 'use_sim_time':   # every ROS node's own (a simulator's /clock)
                if not isinstance(value, bool):
                    raise ValueError(f'{node}.use_sim_time must be true or false, got {value!r}')
                out[name] = value
                continue
            if name not in fields:
                close = difflib.get_close_matches(name, fields, n=3)
                hint = f'; did you mean {close}?' if close else f'; known: {sorted(fields)}'
                raise ValueError(f'{node} has no parameter {name!r}{hint}')
            try:
                value = check_value(fields[name], value)
            except ValueError as exc:
                raise ValueError(f'{node}.{name}: {exc}') from exc
            out[name] = list(value) if isinstance(value, tuple) else value
        built = {}
        for section, (cls, prefix) in sections.items():
            mine = {k[len(prefix):]: v for k, v in out.items()
                    if k.startswith(prefix) and k[len(prefix):] in
                    {s.name for s in specs(cls)}}
            try:
                built[section] = from_mapping(cls, mine)
            except ValueError as exc:
                raise ValueError(f'{node}: {exc}') from exc
        together = getattr(importlib.import_module(NODE_MODULES[node]), 'check_sections', None)
        if together is not None:
            try:
                together(built)
            except ValueError as exc:
                raise ValueError(f'{node}: {exc}') from exc
        checked[node] = out
    return checked


def write_params_file(path: str | os.PathLike, params: Mapping[str, Mapping[str, Any]]) -> None:
    """Write ``params`` as a ROS 2 parameters file.

    Every node goes under ``/**/<node>`` and dotted names become nested sections, as the launch
    YAML files write them; a name under a parameter of its own (``teleop.deadman_button``
    beside ``teleop``) stays one dotted key, which ROS reads the same.
    """
    doc = {}
    for node, values in params.items():
        section: dict[str, Any] = {}
        for name, value in values.items():
            *parents, leaf = name.split('.')
            if any('.'.join(parents[:i + 1]) in values for i in range(len(parents))):
                section[name] = value
                continue
            target = section
            for parent in parents:
                target = target.setdefault(parent, {})
            target[leaf] = value
        doc[f'/**/{node}'] = {'ros__parameters': section}
    Path(path).write_text(yaml.safe_dump(doc, sort_keys=True))


class NodeProcesses:
    """The graph's nodes, one child process each, logging to ``log_dir/<node>.log``.

    rcl's log files go to ``log_dir/ros`` unless ROS_LOG_DIR says where (ROS_HOME does not).
    """

    def __init__(self, nodes: list[str], params_file: str | os.PathLike,
                 log_dir: str | os.PathLike, namespace: str = '',
                 remaps: tuple[str, ...] = ()) -> None:
        """``remaps``: 'FROM:=TO' topic remappings given to every node."""
        self._nodes = list(nodes)
        self._params_file = str(params_file)
        self._log_dir = Path(log_dir)
        self._namespace = namespace
        self._remaps = tuple(remaps)
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self) -> None:
        """Start every node, each in its own session.

        So a terminal's Ctrl-C reaches only this runner, and every node is told to stop exactly
        once, in order.
        """
        self._log_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONUNBUFFERED='1')
        if not env.get('ROS_LOG_DIR'):
            # rcl's own log files (the nodes' ROS log lines, timed) stay with the run: in
            # ~/.ros/log they were apart from it, and grew with every run, never cleaned.
            env['ROS_LOG_DIR'] = str(self._log_dir.resolve() / 'ros')
        for node in self._nodes:
            command = [sys.executable, '-m', NODE_MODULES[node], '--ros-args',
                       '--params-file', self._params_file]
            if self._namespace:
                command += ['-r', f'__ns:=/{self._namespace.strip("/")}']
            for remap in self._remaps:
                command += ['-r', remap]
            with open(self._log_dir / f'{node}.log', 'ab') as log:
                self.processes[node] = subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, env=env,
                    start_new_session=True,
                    preexec_fn=functools.partial(_stop_with_parent, os.getpid()))

    def exited(self) -> dict[str, int]:
        """Nodes that have ended, with their exit codes."""
        return {node: p.returncode for node, p in self.processes.items()
                if p.poll() is not None}

    def log_tail(self, node: str, lines: int = 15) -> str:
        path = self._log_dir / f'{node}.log'
        text = path.read_text(errors='replace') if path.exists() else ''
        return '\n'.join(text.splitlines()[-lines:])

    def stop(self, deadline_s: float = 8.5) -> dict[str, int]:
        """Ask every node to finish (SIGINT once), kill the rest at the deadline.

        The learner first, and the others once it has exited or 3 s after (its hold goes out
        first thing, its checkpoint may take its stop budget): a fixed 0.5 s stopped the
        recorder before a loaded machine's learner sent its hold, and the bag's last command
        moved the arm; waiting for the learner's checkpoint until 2 s before the deadline left
        a loaded machine's reward node too little time to end, and it was killed.

        Returns each node's exit code (-9 for a killed one).
        """
        end = time.monotonic() + deadline_s
        order = [n for n in _STOP_ORDER if n in self.processes]
        order += [n for n in self.processes if n not in order]
        for index, node in enumerate(order):
            process = self.processes[node]
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
            if index == 0:
                _wait(process, min(3.0, max(0.0, end - time.monotonic()
                                            - min(2.0, deadline_s / 4))))
        for process in self.processes.values():
            _wait(process, max(0.0, end - time.monotonic()))
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        return {node: p.returncode for node, p in self.processes.items()}


def _libc_prctl():
    """The C library's prctl, loaded in the runner: a child between fork and exec only calls it."""
    import ctypes
    try:
        return ctypes.CDLL('libc.so.6', use_errno=True).prctl
    except OSError:   # not Linux
        return None


_PRCTL = _libc_prctl()


def _stop_with_parent(runner_pid: int) -> None:
    """Ask for SIGINT when the runner dies (in the child, before exec; Linux only).

    However the runner dies, no node outlives it: the learner then holds the robot and writes
    a checkpoint as on Ctrl-C. Loading a library here, between fork and exec in a process with
    threads (DDS, the monitor's spinner), may deadlock: it was loaded in the runner. A runner
    that died before the call is noticed after it (the parent is then another process).
    """
    if _PRCTL is None:
        return
    _PRCTL(1, signal.SIGINT)   # PR_SET_PDEATHSIG
    if os.getppid() != runner_pid:
        os.kill(os.getpid(), signal.SIGINT)


def _wait(process: subprocess.Popen, timeout_s: float) -> None:
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        pass

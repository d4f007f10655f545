"""Start the node graph in one process from the same YAML as the launch files (no ros2 launch).

The manual-composition pattern of ros2/examples ``composed.py``: the nodes that
``sim_learn.launch.py`` / ``real_robot_learn.launch.py`` start, built here with the same
parameters, spun on one multi-threaded executor, lifecycle nodes configured and activated.
"""
import threading
from typing import Any

import yaml


def load_params(path: str) -> dict[str, dict[str, Any]]:
    """Node name -> flat parameters ('agent.lr') from a ROS 2 parameters YAML file."""
    with open(path, encoding='utf-8') as stream:
        data = yaml.safe_load(stream) or {}
    params = {}
    for key, section in data.items():
        params[key.split('/')[-1]] = flatten_params(section.get('ros__parameters', {}))
    return params


def flatten_params(values: dict, prefix: str = '') -> dict[str, Any]:
    """Nested YAML sections become dotted names, as rclpy declares them ('agent.lr')."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten_params(value, f'{prefix}{key}.'))
        else:
            flat[f'{prefix}{key}'] = value
    return flat


class Graph:
    """The nodes of one robot, spinning on a MultiThreadedExecutor in a background thread."""

    def __init__(self, params: dict[str, dict[str, Any]], sim: bool, record_path: str | None,
                 namespace: str = '', context=None) -> None:
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.parameter import Parameter

        from sole_r1_ros.nodes.camera_node import CameraNode
        from sole_r1_ros.nodes.learner_node import LearnerNode
        from sole_r1_ros.nodes.reward_node import RewardNode

        def overrides(name: str, **extra) -> list:
            values = dict(params.get(name, {}), **extra)
            return [Parameter(k, value=v) for k, v in values.items()]

        kwargs = dict(namespace=namespace, context=context)
        self.nodes = []
        if sim:
            from sole_r1_ros.nodes.sim_robot_node import SimRobotNode
            self.nodes.append(SimRobotNode(parameter_overrides=overrides('sim_robot_node'),
                                           **kwargs))
        self.camera = CameraNode(parameter_overrides=overrides('camera_node'), **kwargs)
        self.reward = RewardNode(parameter_overrides=overrides('reward_node', autostart=False),
                                 **kwargs)
        self.learner = LearnerNode(
            parameter_overrides=overrides('learner_node', autostart=False), **kwargs)
        self.nodes += [self.camera, self.reward, self.learner]
        if record_path:
            from sole_r1_ros.nodes.recorder_node import RecorderNode
            self.recorder = RecorderNode(
                parameter_overrides=[Parameter('bag_path', value=record_path)], **kwargs)
            self.nodes.append(self.recorder)
        self.executor = MultiThreadedExecutor(num_threads=6, context=context)
        for node in self.nodes:
            self.executor.add_node(node)
        self._thread = threading.Thread(target=self._spin, name='executor', daemon=True)
        self._learning = False

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException
        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass

    def add(self, node) -> None:
        self.nodes.append(node)
        self.executor.add_node(node)

    def start(self) -> None:
        """Spin, then configure and activate the reward and learner nodes.

        Raises:
            RuntimeError: a lifecycle node failed to configure (its reason is in the log).
        """
        self._thread.start()
        for node in (self.reward, self.learner):
            if node.trigger_configure().name != 'SUCCESS':
                raise RuntimeError(f'{node.get_name()} failed to configure (see the log above)')
            node.trigger_activate()
        self._learning = True

    def stop(self) -> None:
        """Stop the robot, write a checkpoint, close the bag, shut down."""
        if self._learning:
            self.learner.trigger_deactivate()   # the learner holds the robot here
            self.learner.save_checkpoint()
        self.executor.shutdown(timeout_sec=5.0)
        for node in reversed(self.nodes):
            node.destroy_node()

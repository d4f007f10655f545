"""Camera subscriptions follow their publishers' reliability, as ``ros2 bag record`` does.

Best effort took 2-4 of 60 frames of a reliable 640x480 driver in another process (``make
bench-camera-qos``); a reliable subscription hears nothing of a best-effort publisher.
"""
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from sole_r1_ros.image_msgs import array_to_image  # noqa: E402
from sole_r1_ros.nodes.camera_node import CameraNode  # noqa: E402
from sole_r1_ros.nodes.camera_qos import MatchedSubscription  # noqa: E402
from fakes import own_name  # noqa: E402

_RELIABLE = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)


def _frame() -> Image:
    return array_to_image(np.zeros((8, 8, 3), np.uint8), 'rgb8')


def test_a_subscription_is_reliable_while_every_publisher_is_and_hears_each_kind(ros_graph):
    from rclpy.node import Node
    node = ros_graph.add(Node('follower', context=ros_graph.context))
    heard = []
    follower = MatchedSubscription(node, Image, 'camera/x/image_raw', heard.append)
    assert follower.reliability == ReliabilityPolicy.BEST_EFFORT   # no publisher yet
    probe = ros_graph.probe()
    reliable = probe.create_publisher(Image, 'camera/x/image_raw', _RELIABLE)
    assert ros_graph.wait_for(lambda: follower.reliability == ReliabilityPolicy.RELIABLE,
                              timeout=5.0)
    assert follower.subscription.qos_profile.reliability == ReliabilityPolicy.RELIABLE
    assert ros_graph.wait_for(lambda: reliable.get_subscription_count() == 1)
    reliable.publish(_frame())
    assert ros_graph.wait_for(lambda: len(heard) == 1)
    # A best-effort publisher joins: a reliable subscription would never hear it.
    best_effort = probe.create_publisher(Image, 'camera/x/image_raw', qos_profile_sensor_data)
    assert ros_graph.wait_for(lambda: follower.reliability == ReliabilityPolicy.BEST_EFFORT,
                              timeout=5.0)
    assert ros_graph.wait_for(lambda: best_effort.get_subscription_count() == 1)
    time.sleep(0.3)
    best_effort.publish(_frame())
    assert ros_graph.wait_for(lambda: len(heard) == 2)
    follower.destroy()
    assert ros_graph.wait_for(lambda: best_effort.get_subscription_count() == 0)


def test_the_camera_node_subscribes_reliably_to_a_reliable_driver(ros_graph):
    camera = ros_graph.add(CameraNode(
        context=ros_graph.context, cli_args=own_name('camera_node_qos'),
        parameter_overrides=[Parameter('use_wrist', value=False)]))
    probe = ros_graph.probe()
    probe.create_publisher(Image, 'camera/external/image_raw', _RELIABLE)
    [external] = camera._cameras
    assert ros_graph.wait_for(lambda: external.reliability == ReliabilityPolicy.RELIABLE,
                              timeout=5.0)

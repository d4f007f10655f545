"""Camera subscriptions whose reliability follows their publishers, as ``ros2 bag record``'s does.

Sensor-data QoS (best effort, keep last 5) is the convention for cameras, and a best-effort
publisher (the simulated robot's) needs a best-effort subscription. But a driver that publishes
reliably (RealSense, usb_cam and the Gazebo bridge do by default) sends a 640x480 frame as UDP
fragments, and best effort drops a frame whole when one fragment is late: between two processes
under Fast DDS's default transports a best-effort subscription took 0 of 120 frames at 10 Hz and
18 of 120 at 30 Hz where a reliable one beside it took 120 of 120 (``make bench-camera-qos``,
``bench/results/camera_qos.md``). So the subscription is
reliable while every publisher of the topic offers reliable, and best effort otherwise (a
reliable subscription hears nothing from a best-effort publisher), checked once a second; the
history stays sensor data's.
"""
from typing import Any, Callable

from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy

CHECK_PERIOD_S = 1.0


def offered_reliability(node, topic: str) -> ReliabilityPolicy | None:
    """RELIABLE when every publisher of ``topic`` offers it, BEST_EFFORT when one does not.

    None while the topic has no publisher.
    """
    publishers = node.get_publishers_info_by_topic(topic)
    if not publishers:
        return None
    if all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in publishers):
        return ReliabilityPolicy.RELIABLE
    return ReliabilityPolicy.BEST_EFFORT


class MatchedSubscription:
    """A sensor subscription made again, reliable or not, when its publishers change.

    Destroy it with ``destroy()`` (``entities.destroy_entity`` does), not with the node's
    ``destroy_subscription``. The subscription is remade on the node's executor (its timer),
    never while another thread builds a wait set.
    """

    def __init__(self, node, msg_type: Any, topic: str, callback: Callable[[Any], None],
                 raw: bool = False) -> None:
        self._node, self._msg_type, self._callback, self._raw = node, msg_type, callback, raw
        self._name = topic
        self.topic = node.resolve_topic_name(topic)   # remapped: what publishers are found on
        self.reliability = offered_reliability(node, self.topic) or ReliabilityPolicy.BEST_EFFORT
        self._subscription = self._subscribe()
        self._timer = node.create_timer(CHECK_PERIOD_S, self._follow_publishers)

    @property
    def subscription(self):
        """The subscription now (another object after a change of publishers)."""
        return self._subscription

    def destroy(self) -> None:
        self._node.destroy_timer(self._timer)
        self._node.destroy_subscription(self._subscription)

    def _subscribe(self):
        qos = QoSProfile(history=qos_profile_sensor_data.history,
                         depth=qos_profile_sensor_data.depth, reliability=self.reliability,
                         durability=qos_profile_sensor_data.durability)
        return self._node.create_subscription(self._msg_type, self._name, self._callback, qos,
                                              raw=self._raw)

    def _follow_publishers(self) -> None:
        wanted = offered_reliability(self._node, self.topic)
        if wanted is None or wanted == self.reliability:
            return
        self._node.destroy_subscription(self._subscription)
        self.reliability = wanted
        self._subscription = self._subscribe()
        self._node.get_logger().info(
            f'{self.topic}: subscribed {wanted.name.lower().replace("_", " ")}, as its '
            'publishers offer')

"""Undo what a lifecycle node's on_configure created (rclpy has no one call for all kinds)."""
from typing import Any


def destroy_entity(node, entity: Any) -> None:
    """Destroy a subscription, publisher, service, client, timer or action server of ``node``.

    A lifecycle node's on_cleanup undoes its on_configure with it.
    """
    from rclpy.action import ActionServer
    from rclpy.client import Client
    from rclpy.publisher import Publisher
    from rclpy.service import Service
    from rclpy.subscription import Subscription
    from rclpy.timer import Timer
    from sole_r1_ros.nodes.camera_qos import MatchedSubscription
    if isinstance(entity, (ActionServer, MatchedSubscription)):
        entity.destroy()
        return
    for kind, destroy in ((Subscription, node.destroy_subscription),
                          (Publisher, node.destroy_publisher), (Service, node.destroy_service),
                          (Client, node.destroy_client), (Timer, node.destroy_timer)):
        if isinstance(entity, kind):
            destroy(entity)
            return
    raise TypeError(f'cannot destroy {type(entity).__name__}')

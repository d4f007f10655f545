"""Small helpers for our launch files (imported only by them, so launch_ros stays optional)."""


def configure_and_activate(lifecycle_node) -> list:
    """Launch entities that configure ``lifecycle_node`` at start and activate it once inactive.

    Anchor: ros2/demos lifecycle_py and nav2's lifecycle manager do the same two steps.
    """
    from launch.actions import EmitEvent, RegisterEventHandler
    from launch.events import matches_action
    from launch_ros.event_handlers import OnStateTransition
    from launch_ros.events.lifecycle import ChangeState
    from lifecycle_msgs.msg import Transition

    def change(transition_id: int) -> EmitEvent:
        return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(lifecycle_node),
                                           transition_id=transition_id))

    return [
        RegisterEventHandler(OnStateTransition(
            target_lifecycle_node=lifecycle_node, goal_state='inactive',
            entities=[change(Transition.TRANSITION_ACTIVATE)])),
        change(Transition.TRANSITION_CONFIGURE),
    ]

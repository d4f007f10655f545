"""Commands out of the learner in the message form the robot's controller takes, and holds.

The maths is ROS-free (``rl.commands``, ``rl.safety``): the safety box clamps every action, the
policy's and a human's, right here before publishing. This module only picks the message type:

- ``twist_stamped``: ``geometry_msgs/TwistStamped`` for MoveIt Servo (hold: zero twist);
- ``pose_stamped``: ``geometry_msgs/PoseStamped``, current pose + safe step (hold: current pose);
- ``float64_multiarray``: ``std_msgs/Float64MultiArray``: joint targets, or the simulated
  robot's 4-value end-effector command (hold: current joints / zero deltas);
- ``joint_trajectory``: a one-point ``trajectory_msgs/JointTrajectory`` (hold: current joints);
- the gripper, when it has its own controller, as a position on ``gripper_topic``.
"""
import time

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.time import Time
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from sole_r1_ros.rl.commands import (
    ACTION_LAYOUTS, CommandConfig, ee_command, gripper_command, hold_joints, hold_normalized,
    JointLimits)
from sole_r1_ros.rl.poses import EePose, quat_from_rotvec, quat_multiply
from sole_r1_ros.rl.safety import JointTargetAdapter, SafetyBox
from sole_r1_ros.rl.sensing import Sensed

_PREDICT_S = 1.0   # the longest a pose may lag the velocities counted on top of it [s]

MESSAGE_TYPES = {'twist_stamped': TwistStamped, 'pose_stamped': PoseStamped,
                 'float64_multiarray': Float64MultiArray, 'joint_trajectory': JointTrajectory}
'''The message class of each command_type and gripper_command_type.'''


class CommandOutput:
    """Publishers of one arm command form (+ gripper) with the safety applied last."""

    def __init__(self, node, layout: str, config: CommandConfig, box: SafetyBox,
                 joint_names: tuple[str, ...], limits: JointLimits, command_topic: str,
                 gripper_topic: str, period_s: float) -> None:
        """Create the publishers of one command form.

        Raises:
            ValueError: a combination no controller takes (joint commands as a twist, ...).
        """
        if layout not in ACTION_LAYOUTS:
            raise ValueError(f'action_layout must be one of {ACTION_LAYOUTS}, got {layout!r}')
        cartesian = config.command_type in ('twist_stamped', 'pose_stamped')
        if layout == 'joint_position' and cartesian:
            raise ValueError(f'command.command_type {config.command_type!r} needs '
                             "action_layout 'ee_delta'")
        if layout == 'ee_delta' and config.command_type == 'joint_trajectory':
            raise ValueError("end-effector actions go out as 'twist_stamped', 'pose_stamped' "
                             "or 'float64_multiarray', not 'joint_trajectory'")
        self._node, self._layout, self._config, self._box = node, layout, config, box
        self._period_s = period_s
        # A target at most speed x period from where the arm is: one reached in a period (the
        # trajectory's time_from_start) asks no more than max_speed_rad_s of the controller,
        # also of an arm held back by contact (0.03 rad in 0.05 s had asked twice the speed).
        self._joints = (JointTargetAdapter(joint_names, limits.lower, limits.upper,
                                           min(limits.max_step_rad,
                                               limits.max_speed_rad_s * period_s),
                                           limits.rate_per_command(period_s))
                        if layout == 'joint_position' else None)
        self._publisher = node.create_publisher(
            MESSAGE_TYPES[config.command_type], command_topic, 10)
        self._gripper_publisher = None
        if config.gripper_command_type != 'none':
            self._gripper_publisher = node.create_publisher(
                MESSAGE_TYPES[config.gripper_command_type], gripper_topic, 10)
        self._last: Sensed | None = None   # what the arm was at when last commanded
        self._hold = None   # the joints or pose holds repeat until the next command
        self._previous_target: np.ndarray | None = None
        # (sent [ns], linear [m/s], angular [rad/s]), in order
        self._twists: list[tuple[int, np.ndarray, np.ndarray]] = []
        self._gripper = 0.0
        self._gripper_closed = False
        self._gripper_known = False   # measured, or commanded since the start or a reset
        self.sent = 0
        self.limited = 0   # commands the safety box changed
        self.outside_box = 0   # commands sent with the end effector outside the box

    @property
    def action_dim(self) -> int:
        return self._config.action_dim if self._joints is None else len(self._joints.joint_names)

    @property
    def frame_id(self) -> str:
        return self._config.frame_id

    @property
    def gripper(self) -> float:
        """The gripper as it is: +1 closed, -1 open (a human taking over starts from it).

        With a gripper controller of its own that is the hysteresis state, not the last action:
        an action between the thresholds (0.3) leaves an open gripper open, and a SpaceMouse
        toggle that went by that action's sign sent -1 to an open gripper (a first press did
        nothing). Without one (the simulator's 4-value command) it is the last action.
        """
        if self._gripper_publisher is not None:
            return 1.0 if self._gripper_closed else -1.0
        return self._gripper

    def update(self, section: str, config) -> None:
        """A run-time parameter change of the safety box or the gripper's settings.

        Each command reads them once, so the change applies from the next command. The other
        fields of both sections are read-only (they pick publishers and message types).
        """
        if section == 'safety':
            self._box = config
        elif section == 'command':
            self._config = config

    def destroy(self) -> None:
        for publisher in (self._publisher, self._gripper_publisher):
            if publisher is not None:
                self._node.destroy_publisher(publisher)

    def send(self, action: np.ndarray, sensed: Sensed) -> None:
        """Publish ``action`` at the state ``sensed`` after the safety limits."""
        self._last, self._hold = sensed, None
        if self._joints is not None:
            target = self._joints.command(action, sensed.joint_positions, self._previous_target)
            self._publish_joints(target)
            return
        ahead = turned = None
        if self._config.command_type == 'twist_stamped' and sensed.pose_stamp_ns is not None:
            ahead, turned = self._predicted(sensed.pose, sensed.pose_stamp_ns,
                                            sensed.pose_arrived_s)
        command = ee_command(action, sensed.pose, self._config, self._box, self._period_s,
                             also_at=ahead, also_turned=turned)
        self.limited += bool(command.delta.limits)
        if 'box' in command.delta.limits:
            self._say_if_outside(sensed.pose.position)
        self._gripper = command.gripper
        kind = self._config.command_type
        if kind == 'twist_stamped':
            self._publish_twist(command.linear_m_s, command.angular_rad_s)
        elif kind == 'pose_stamped':
            self._publish_pose(command.target.position, command.target.orientation)
        else:
            self._publisher.publish(Float64MultiArray(data=command.normalized.tolist()))
            self.sent += 1
        self._publish_gripper(command.gripper)

    def _say_if_outside(self, position: np.ndarray) -> None:
        """Warn of an end effector outside the box: most likely a box in another frame.

        It is let back in, never further out, but an arm that starts 0.45 m outside was driven
        about without a word.
        """
        lower, upper = np.asarray(self._box.box_lower), np.asarray(self._box.box_upper)
        out = np.maximum(lower - position, 0.0) + np.maximum(position - upper, 0.0)
        if np.any(out > 1e-3):
            self.outside_box += 1
            self._node.get_logger().warning(
                f'the end effector is at {np.round(position, 3).tolist()}, outside the safety '
                f'box by {np.round(out, 3).tolist()} m: is the box (safety.box_lower/upper) in '
                f'command.frame_id {self._config.frame_id!r}? Commands may only move it back in',
                throttle_duration_sec=10.0)

    def _predicted(self, pose: EePose, stamp_ns: int, arrived_s: float | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
        """``pose`` moved and turned by the twists sent since its stamp (``_PREDICT_S`` at most).

        A velocity command moves the arm until the next one; the box was checked against a
        pose that had not seen the motion already sent (a pose 0.1 s old let a Servo-driven arm
        leave the box by 10 mm, 0.45 s by 45 mm). The step must keep both this and the
        measured position in the box: an arm that did not follow is kept in too. A stamp
        later than its arrival (``arrived_s``, on ``time.monotonic``; another host's clock
        ahead of ours) counts from the arrival: it had counted nothing, and the arm left the
        box by 30 mm again (and by 6 mm more at 30 ms of inference, its age taken before). The
        turn likewise, for the yaw limit (a pose 0.3 s old let the tool turn 17 degrees past
        it). Returns (position, orientation).
        """
        now = self._node.get_clock().now().nanoseconds
        if arrived_s is not None:
            age_s = max(time.monotonic() - arrived_s, 0.0)
            stamp_ns = min(stamp_ns, now - int(age_s * 1e9))
        since = max(stamp_ns, now - int(_PREDICT_S * 1e9))
        moved, turned = np.zeros(3), np.zeros(3)
        ends = [t for t, _, _ in self._twists[1:]] + [now]
        for (start, linear, angular), end in zip(self._twists, ends):
            overlap = min(end, now) - max(start, since)
            if overlap > 0:
                moved += linear * (overlap * 1e-9)
                turned += angular * (overlap * 1e-9)
        orientation = quat_multiply(quat_from_rotvec(turned), pose.orientation)
        return pose.position + moved, orientation / np.linalg.norm(orientation)

    def sense_gripper(self, names, positions) -> None:
        """Take the gripper's state from its measured joints until a command sets it.

        At the start (a restart while grasping) and after a reset the state was assumed open,
        so the first action between the thresholds opened a closed gripper: the object fell.
        Nearer the closed position than the open one counts as closed.
        """
        if self._gripper_publisher is None or self._gripper_known:
            return
        lookup = dict(zip(names, positions))
        values = [lookup[name] for name in self._config.gripper_joint_names if name in lookup]
        if not values or not np.all(np.isfinite(values)):
            return
        c, at = self._config, float(np.mean(values))
        self._gripper_closed = (abs(at - c.gripper_closed_position)
                                < abs(at - c.gripper_open_position))
        self._gripper_known = True

    def forget(self) -> None:
        """The arm moved without us (a reset homed it): hold nothing from before.

        A hold repeated the joints or pose of the last command's moment, so the first hold of
        an episode sent a homed arm back to where the last one ended (up to 1.7 rad at once).
        """
        self._last = self._hold = self._previous_target = None
        self._gripper_known = False   # a reset may open or close it

    def hold(self, joints: np.ndarray | None = None, pose=None) -> None:
        """Command no motion (zero twist, the current pose or joints, zero deltas).

        A position hold's target is fixed at the first hold after a command, from ``joints`` /
        ``pose`` (measured now, fresh, or None), else from the last command's moment; later
        holds repeat it, so a sagging arm is not followed down. With neither (after
        ``forget``, nothing measured since), nothing is sent: the controller keeps its target.
        An arm measured more than one command's step from that target (moved by hand, its
        controller switched meanwhile) is held where it is: the target is not a jump back.
        """
        kind = self._config.command_type
        self._hold_where_measured(joints, pose)
        if self._joints is not None:
            if self._hold is None:
                at = joints if joints is not None else (
                    None if self._last is None else self._last.joint_positions)
                self._hold = None if at is None else hold_joints(at)
            if self._hold is not None:
                self._previous_target = None
                self._publish_joints(self._hold, rate_limit=False)
        elif kind == 'twist_stamped':
            self._publish_twist(np.zeros(3), np.zeros(3))
        elif kind == 'pose_stamped':
            if self._hold is None:
                self._hold = pose if pose is not None else (
                    None if self._last is None else self._last.pose)
            if self._hold is not None:
                self._publish_pose(self._hold.position, self._hold.orientation)
        else:
            self._publisher.publish(Float64MultiArray(data=hold_normalized(
                self._gripper).tolist()))
            self.sent += 1

    def _hold_where_measured(self, joints: np.ndarray | None, pose) -> None:
        """Drop a hold target further than one command's step from the arm measured now."""
        if self._hold is None:
            return
        if self._joints is not None and joints is not None:
            away = np.abs(self._hold - np.asarray(joints, np.float64))
            step = np.broadcast_to(np.asarray(self._joints.max_rate_rad, np.float64),
                                   away.shape)
            far = bool(np.any(away > step))
        elif self._config.command_type == 'pose_stamped' and pose is not None:
            step = min(self._box.max_translation_m, self._box.max_speed_m_s * self._period_s)
            far = float(np.linalg.norm(self._hold.position - pose.position)) > step
        else:
            return
        if far:
            self._node.get_logger().warning(
                'the arm is not where it was held (moved by hand, or its controller switched '
                'meanwhile): holding it where it is now', throttle_duration_sec=5.0)
            self._hold = None

    def _stamped(self, msg):
        msg.header.stamp = self._node.get_clock().now().to_msg()
        msg.header.frame_id = self._config.frame_id
        return msg

    def _publish_twist(self, linear: np.ndarray, angular: np.ndarray) -> None:
        msg = self._stamped(TwistStamped())
        sent_ns = Time.from_msg(msg.header.stamp).nanoseconds
        self._twists.append((sent_ns, np.array(linear, np.float64),
                             np.array(angular, np.float64)))
        while self._twists and self._twists[0][0] < sent_ns - 2 * int(_PREDICT_S * 1e9):
            self._twists.pop(0)
        msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = map(float, linear)
        msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z = map(float, angular)
        self._publisher.publish(msg)
        self.sent += 1

    def _publish_pose(self, position: np.ndarray, orientation: np.ndarray) -> None:
        msg = self._stamped(PoseStamped())
        p, q = msg.pose.position, msg.pose.orientation
        p.x, p.y, p.z = map(float, position)
        q.x, q.y, q.z, q.w = map(float, orientation)
        self._publisher.publish(msg)
        self.sent += 1

    def _publish_joints(self, target: np.ndarray, rate_limit: bool = True) -> None:
        if rate_limit:
            self._previous_target = target
        names = list(self._joints.joint_names)
        if self._config.command_type == 'joint_trajectory':
            self._publisher.publish(self._trajectory(names, target))
        else:
            self._publisher.publish(Float64MultiArray(data=[float(v) for v in target]))
        self.sent += 1

    def _publish_gripper(self, value: float) -> None:
        if self._gripper_publisher is None:
            return
        self._gripper_closed, position = gripper_command(value, self._gripper_closed,
                                                         self._config)
        self._gripper_known = True
        names = list(self._config.gripper_joint_names)
        positions = np.full(len(names), position)
        if self._config.gripper_command_type == 'joint_trajectory':
            self._gripper_publisher.publish(self._trajectory(names, positions))
        else:
            self._gripper_publisher.publish(Float64MultiArray(data=positions.tolist()))

    def _trajectory(self, names: list[str], positions: np.ndarray) -> JointTrajectory:
        msg = JointTrajectory(joint_names=names)   # a zero stamp: start now
        point = JointTrajectoryPoint(positions=[float(v) for v in positions])
        point.time_from_start.sec = int(self._period_s)
        point.time_from_start.nanosec = int((self._period_s % 1.0) * 1e9)
        msg.points = [point]
        return msg

"""The robot as the learner's control loop sees it (``rl.loop.Robot``), made of ROS topics.

Sensor messages go into ``rl.Sensors`` (which checks them), commands out through
``CommandOutput`` (which applies the safety box), resets through a ``std_srvs/Trigger`` service
with a bounded wait, episode boundaries and results onto their topics. Methods called by the
loop never raise for a robot-side problem; message callbacks return a rejection reason instead.
"""
import threading
import time

import numpy as np
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.time import Time
from std_srvs.srv import Trigger
from visualization_msgs.msg import Marker

from sole_r1_interfaces.msg import Episode, EpisodeResult
from sole_r1_ros.nodes.command_output import CommandOutput
from sole_r1_ros.rl import Sensed, Sensors
from sole_r1_ros.rl.loop import EpisodeSummary

# A reset still running after this long is said again (the arm holds until it answers).
_RESET_REPORT_S = 30.0


class RobotClient:
    """``rl.loop.Robot`` over topics and services of one learner node."""

    def __init__(self, node, sensors: Sensors, output: CommandOutput, reset_service: str,
                 firewall, hand_reset_s: float = 0.0, marker_frame: str = 'world') -> None:
        self._node = node
        self._marker_frame = marker_frame
        self._hand_reset_s = hand_reset_s
        self._reset_before = False   # the scene is set for the first episode
        self._forgot_s = float('-inf')   # holds use measurements that arrived after this
        self.sensors = sensors
        self.output = output
        self.human = None   # rl.Teleop, when a person may take over
        self._firewall = firewall
        self._reset = (node.create_client(Trigger, reset_service,
                                          callback_group=ReentrantCallbackGroup())
                       if reset_service else None)
        self._episode_pub = self._result_pub = self._marker_pub = None
        self._last_episode = ''

        self._tf = None
        self.stopping = threading.Event()   # set by the node's stop(): waits end early

    def publishers(self, episode_pub, result_pub, marker_pub) -> None:
        self._episode_pub, self._result_pub, self._marker_pub = (episode_pub, result_pub,
                                                                 marker_pub)

    def update(self, section: str, config) -> None:
        """A run-time parameter change: timeouts, the safety box, the gripper, the Joy mapping."""
        if section == 'sensing':
            self.sensors.config = config
        elif section in ('safety', 'command'):
            self.output.update(section, config)
        elif section == 'teleop' and self.human is not None:
            self.human.reconfigure(config)

    def destroy(self) -> None:
        node = self._node
        self.output.destroy()
        for publisher in (self._episode_pub, self._result_pub, self._marker_pub):
            if publisher is not None:
                node.destroy_publisher(publisher)
        if self._reset is not None:
            node.destroy_client(self._reset)
        if self._tf is not None:
            node.destroy_timer(self._tf[2])

    # -- sensor callbacks ---------------------------------------------------------------------
    def joint_states(self, msg) -> str | None:
        self.output.sense_gripper(list(msg.name), list(msg.position))
        return self.sensors.add_joints(Time.from_msg(msg.header.stamp).nanoseconds,
                                       list(msg.name), list(msg.position), list(msg.velocity))

    def ee_pose(self, msg) -> str | None:
        frame = self.output.frame_id
        if msg.header.frame_id.lstrip('/') != frame.lstrip('/'):   # the box is in `frame`
            return (f'end-effector pose in frame {msg.header.frame_id!r}; the safety box and '
                    f'the commands are in {frame!r} (command.frame_id): a pose in no named '
                    'frame cannot be checked against the box')
        p, q = msg.pose.position, msg.pose.orientation
        return self.sensors.add_pose(Time.from_msg(msg.header.stamp).nanoseconds,
                                     [p.x, p.y, p.z], [q.x, q.y, q.z, q.w])

    def joy(self, msg) -> str | None:
        if self.human is None:
            return None
        decision = self.human.update(list(msg.axes), list(msg.buttons),
                                     gripper_now=self.output.gripper)
        for event in decision.events:
            self._node.get_logger().info(f'teleop: {event}')
            if event in ('took_over', 'handed_back'):
                self.publish_marker()
        invalid = decision.mode == 'hold' and decision.reason.startswith('invalid')
        return decision.reason if invalid else None

    def start_tf(self, base_frame: str, ee_frame: str) -> None:
        """Read the pose from tf2 (base_frame -> ee_frame) at 50 Hz.

        Raises:
            ImportError: tf2_ros is not installed (it has no PyPI wheel; use pose_source topic).
        """
        try:
            from tf2_ros import Buffer, TransformListener
        except ImportError as exc:
            raise ImportError("pose_source 'tf' needs tf2_ros (a ROS install; the PyPI wheels "
                              "lack it): use pose_source 'topic' with an ee_pose publisher"
                              ) from exc
        buffer = Buffer()
        listener = TransformListener(buffer, self._node)

        def lookup() -> None:
            t = buffer.lookup_transform(base_frame, ee_frame, Time())
            tr, q = t.transform.translation, t.transform.rotation
            reason = self.sensors.add_pose(Time.from_msg(t.header.stamp).nanoseconds,
                                           [tr.x, tr.y, tr.z], [q.x, q.y, q.z, q.w])
            if reason:
                self._firewall.reject('tf', reason)
        timer = self._node.create_timer(0.02, self._firewall.guard('tf', lookup))
        self._tf = (buffer, listener, timer)

    # -- rl.loop.Robot ----------------------------------------------------------------------
    def observe(self) -> Sensed | None:
        sensed = self.sensors.take()
        if sensed is None:
            stale = self.sensors.stale_reasons()
            if stale:
                said = '; '.join(f'{source}: {why}' for source, why in stale.items())
                self._node.get_logger().warning(f'stale or missing input, holding ({said})',
                                                throttle_duration_sec=2.0)
            elif unpaired := self.sensors.unpaired_reason():
                self._node.get_logger().warning(f'no moment with every view, holding '
                                                f'({unpaired})', throttle_duration_sec=2.0)
        return sensed

    def send(self, action: np.ndarray, sensed: Sensed) -> bool:
        """Command ``action``; False, holding instead, when an input went stale meanwhile.

        Freshness was checked when the moment was taken; a slow policy inference can outlast
        an input's timeout, and then the action is for an arm nobody sees any more.
        """
        stale = self.sensors.stale_sources()
        if stale:
            self._node.get_logger().warning(
                f'{", ".join(stale)} went stale while the policy decided: holding instead of '
                'acting', throttle_duration_sec=2.0)
            self.hold()
            return False
        self.output.send(action, sensed)
        return True

    def hold(self) -> None:
        try:
            self.output.hold(*self.sensors.measured(since_s=self._forgot_s))
        except Exception as exc:  # noqa: BLE001 (holding must never raise out of the loop)
            self._firewall.reject('hold', f'{type(exc).__name__}: {exc}')

    def reset(self) -> bool:
        """Call the reset service; True when the robot answered that it reset.

        Waits for the answer however long the reset takes, saying so every 30 s: a reset given
        up on kept moving the arm while the next episode's commands went out, and the next
        call queued behind it ran mid-episode. Gives up as soon as ``stopping`` is set: a stop
        must not wait for a robot that will never answer. Without a service, a person resets:
        between episodes the arm holds ``hand_reset_s`` for it.
        """
        try:
            return self._reset_robot()
        finally:   # the arm may have moved: holds start from what is measured after this
            self.forget()

    def forget(self) -> None:
        """The arm may move without us from now: holds start from what is measured after."""
        self.output.forget()
        self._forgot_s = self.sensors.now_s

    def _reset_robot(self) -> bool:
        if self._reset is None:
            first, self._reset_before = not self._reset_before, True
            if self._hand_reset_s > 0 and not first:   # a person puts the scene back: hold
                self._node.get_logger().info(
                    f'episode over: put the scene back; the next starts in '
                    f'{self._hand_reset_s:g} s (pause the learner to take longer)')
                self._wait(self.stopping.is_set, self._hand_reset_s)
            return True
        if not self._wait(lambda: self._reset.service_is_ready(), 5.0):
            self._node.get_logger().error(
                f'reset service {self._reset.srv_name} unavailable; continuing without reset '
                "(reset_service: '' has a person reset the scene between episodes)")
            return False
        done = threading.Event()
        future = self._reset.call_async(Trigger.Request())
        future.add_done_callback(lambda _: done.set())
        waited = 0.0
        while not self._wait(done.is_set, _RESET_REPORT_S):
            if self.stopping.is_set():
                return False
            waited += _RESET_REPORT_S
            self._node.get_logger().error(
                f'reset {self._reset.srv_name} still running after {waited:.0f} s: the arm '
                'holds and no episode starts until it answers (stop the learner to give up)')
        result = future.result()
        return result is not None and result.success

    def _wait(self, condition, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if self.stopping.is_set() or time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def announce(self, episode_id: str, evaluation: bool = False,
                 since_ns: int | None = None) -> None:
        msg = Episode(episode_id=episode_id, evaluation=evaluation)
        msg.header.stamp = (self._node.get_clock().now() if since_ns is None
                            else Time(nanoseconds=since_ns)).to_msg()
        if episode_id:
            self.sensors.clear_frames()   # frames from before this moment belong to no episode
        if self._episode_pub is not None:
            self._episode_pub.publish(msg)

    def episode_finished(self, summary: EpisodeSummary) -> None:
        msg = EpisodeResult(episode_id=summary.episode_id, steps=summary.steps,
                            evaluation=summary.evaluation,
                            intervened_steps=summary.intervened_steps,
                            intervention_rate=float(summary.intervention_rate),
                            label=summary.label or '', env_steps=summary.env_steps,
                            counted=summary.counted)
        msg.header.stamp = self._node.get_clock().now().to_msg()
        if self._result_pub is not None:
            self._result_pub.publish(msg)
        self._last_episode = (f'last episode: {summary.intervention_rate:.0%} human'
                              + (f', labelled {summary.label}' if summary.label else ''))
        self.publish_marker()
        if summary.intervened_steps or summary.label:
            self._node.get_logger().info(
                f'episode {summary.episode_id}: {summary.steps} steps, intervention rate '
                f'{summary.intervention_rate:.0%}, label {summary.label or "none"}')

    def publish_marker(self) -> None:
        """Who drives, and the last episode's intervention rate and label, for rviz.

        Also once a second (the node's status timer): an rviz opened mid-episode shows it.
        """
        if self._marker_pub is None:
            return
        # the teleop as it is now: a reconfigure or a silent Joy sends no event
        mode = self.human.current().mode if self.human is not None else 'policy'
        driver = {'human': 'HUMAN', 'hold': 'nobody (holding)'}.get(mode, 'policy')
        marker = Marker(ns='sole_r1_learner', id=0, type=Marker.TEXT_VIEW_FACING,
                        action=Marker.ADD, text=f'{driver} driving\n{self._last_episode}')
        marker.header.stamp = self._node.get_clock().now().to_msg()
        marker.header.frame_id = self._marker_frame
        marker.pose.position.z, marker.pose.orientation.w, marker.scale.z = 0.8, 1.0, 0.06
        human = mode == 'human'
        marker.color.r, marker.color.g, marker.color.b, marker.color.a = (
            (1.0, 0.5, 0.1, 1.0) if human else (0.6, 0.8, 1.0, 1.0))
        self._marker_pub.publish(marker)

"""Learn a policy online from late progress rewards, and drive the robot safely meanwhile.

Subscribes ``camera/<view>/image_raw``, ``joint_states``, ``ee_pose`` (or tf),
``sole_r1/progress``, ``joy`` (a human's hand, optional) and ``ground_truth`` (simulator:
evaluation reports, and the state of the named privileged baseline only); publishes commands in
the controller's form (``command_output``), ``episode``, ``episode_result`` and ``/diagnostics``;
serves ``~/reset``, ``~/pause``, ``~/label_episode`` and the ``~/evaluate`` action. The loop is
``rl.ControlLoop`` (ROS-free); this node converts messages and runs its actor and learner
threads. Every callback is guarded: a bad message is rejected, counted and logged, never raised.
"""
import gc
from pathlib import Path
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped
from rclpy.lifecycle import Node as LifecycleNode, State, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import Image, JointState, Joy
from std_srvs.srv import SetBool, Trigger
from visualization_msgs.msg import Marker

from sole_r1_interfaces.msg import Episode, EpisodeResult, ProgressReward, TaskState
from sole_r1_interfaces.srv import LabelEpisode
from sole_r1_ros.allocator import keep_freed_memory
from sole_r1_ros.nodes.camera_qos import MatchedSubscription
from sole_r1_ros.nodes.command_output import CommandOutput
from sole_r1_ros.image_msgs import image_to_rgb
from sole_r1_ros.nodes.entities import destroy_entity
from sole_r1_ros.nodes.evaluate_action import EvaluateAction
from sole_r1_ros.nodes.firewall import Firewall, logged_transition, status_message
from sole_r1_ros.nodes.learner_config import check_sections, LearnerNodeConfig, SECTIONS
from sole_r1_ros.nodes.params import NodeConfigs
from sole_r1_ros.nodes.robot_client import RobotClient
from sole_r1_ros.nodes.spin import run_node, set_torch_threads
from sole_r1_ros.rl import (
    ControlLoop, MetricsLogger, OnlineLearner, prepare_observation, Sensors, Teleop)
from sole_r1_ros.rl.checkpoint import lock_directory
from sole_r1_ros.sim.metaworld_robot import STATE_SIZE

_LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def _meaning(c) -> dict:
    """What this run's actions, inputs and rewards mean: a resume with another is refused.

    The launch files resume a run_dir without asking (``sole-r1 learn`` checks its own
    parameters files too), and a replay of another goal's rewards, or joint offsets read as
    end-effector deltas, loads silently where the sizes match.
    """
    sensing = c['sensing']
    return {'goal': c['node'].goal, 'action_layout': c['node'].action_layout,
            'rotation_actions': c['command'].rotation_actions,
            'joint_names': list(sensing.joint_names), 'observation': sensing.observation,
            'use_ee_pose': sensing.use_ee_pose, 'views': list(sensing.views)}


def _check_not_over_a_run(node) -> None:
    """Refuse ``resume: false`` where ``run_dir`` holds a run's checkpoints.

    The new run numbered its checkpoints on from the old ones and rotated them away: three
    checkpoints in, the old run was gone, with nothing said. ``sole-r1 learn`` refuses this
    too, and ``--fresh`` moves the old run aside first.

    Raises:
        ValueError: checkpoints are there and ``resume`` is off.
    """
    from sole_r1_ros.rl.checkpoint import list_checkpoints
    folder = Path(node.run_dir, 'checkpoints')
    found = list_checkpoints(folder)
    if not node.resume and found:
        raise ValueError(f'{folder.resolve()} holds a run ({len(found)} checkpoints) and '
                         'resume is false: the new run would delete them. Set resume: true to '
                         'continue it, choose another run_dir, or move that folder away '
                         '(sole-r1 learn --fresh does)')


class LearnerNode(LifecycleNode):
    """Actor and learner threads around a ``ControlLoop``; commands stop when inactive."""

    def __init__(self, **kwargs) -> None:
        super().__init__('learner_node', **kwargs)
        self.loop: ControlLoop | None = None
        self._robot: RobotClient | None = None
        # Before anything that may raise: destroy_node reads them on a half-built node.
        self._threads: list[threading.Thread] = []
        self._lingering: list[threading.Thread] = []   # a stopped activation's, still running
        self.finalized = False   # shut down: spin.run_node ends the process
        self._metrics: MetricsLogger | None = None
        self._run_lock = None   # the run directory's checkpoint lock, while configured
        self._entities: list = []
        self._evaluate: EvaluateAction | None = None
        self._retired: list[EvaluateAction] = []   # cleaned up with a goal's result to send
        self._configs = NodeConfigs(self, SECTIONS, on_change=self._config_changed)
        self.firewall = Firewall(self)
        self._running = threading.Event()
        self._start_env_steps = 0

    @property
    def learner(self) -> OnlineLearner | None:
        return None if self.loop is None else self.loop.learner

    def _config_changed(self, section: str, config) -> None:
        if self.loop is not None and section == 'loop':
            self.loop.config = config
        if self._robot is not None:   # it knows which sections it applies (one list, not two)
            self._robot.update(section, config)

    # -- lifecycle ------------------------------------------------------------------------------
    @logged_transition
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        c, node = self._configs, self._configs['node']
        try:
            check_sections(c)
            set_torch_threads(node.torch_threads)
            sensors = Sensors(c['sensing'])
            self.firewall.listeners = [sensors.note_rejection]   # 'rejected', not 'never came'
            self._robot = RobotClient(self, sensors, CommandOutput(
                self, node.action_layout, c['command'], c['safety'], c['sensing'].joint_names,
                c['joints'], node.command_topic, node.gripper_topic,
                1.0 / c['loop'].control_rate_hz), node.reset_service, self.firewall,
                node.hand_reset_s, node.marker_frame)
            self._run_lock = lock_directory(f'{node.run_dir}/checkpoints')
            _check_not_over_a_run(node)
            learner = OnlineLearner(
                c['agent'], c['replay'], c['sensing'].state_dim(STATE_SIZE),
                self._robot.output.action_dim, checkpoint_dir=f'{node.run_dir}/checkpoints',
                stamp_tolerance_s=0.5 / c['loop'].control_rate_hz, meaning=_meaning(c))
            if node.resume and learner.resume():
                self.get_logger().info(f'resumed from checkpoint: {learner.counters()}')
                if learner.evicted_frames:
                    self.get_logger().warning(
                        f'resumed without {learner.evicted_frames} replay frames: their image '
                        'segments were damaged on disk (the run and the rest of the replay go '
                        'on)')
            elif node.resume:   # a relative run_dir from another folder would land here too
                self.get_logger().warning(
                    f'no checkpoint in {Path(node.run_dir, "checkpoints").resolve()}: a new '
                    'run starts')
            self._start_env_steps = learner.env_steps
            human = (Teleop(c['teleop'], self._robot.output.action_dim) if node.teleop
                     else None)
            self.loop = ControlLoop(learner, self._robot, c['loop'], lambda s: prepare_observation(
                s.state, s.views, c['agent']), human=human,
                may_begin=self._reward_is_up if node.wait_for_reward else None)
            self.loop.halt(hold=False)   # no command, not even a pause's hold, until active
            self._robot.human = human
            self._metrics = MetricsLogger(f'{node.run_dir}/logs')
            self._create_entities(node)
        except Exception as exc:  # a bad setting, an unreadable checkpoint, torch missing
            self.get_logger().error(f'cannot configure the learner: {type(exc).__name__}: {exc}')
            self._destroy_entities()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def _create_entities(self, node: LearnerNodeConfig) -> None:
        guard, robot, e = self.firewall.guard, self._robot, self._entities
        for view in self._configs['sensing'].views:
            e.append(MatchedSubscription(   # reliable where the driver is: see camera_qos
                self, Image, f'camera/{view}/image_raw',
                guard(f'camera/{view}', lambda m, v=view: robot.sensors.add_frame(
                    v, Time.from_msg(m.header.stamp).nanoseconds, image_to_rgb(m)))))
        e.append(self.create_subscription(JointState, 'joint_states',
                                          guard('joint_states', robot.joint_states), 10))
        if node.pose_source == 'topic':
            e.append(self.create_subscription(PoseStamped, 'ee_pose',
                                              guard('ee_pose', robot.ee_pose), 10))
        else:
            robot.start_tf(self._configs['command'].frame_id, node.tf_ee_frame)
        e.append(self.create_subscription(ProgressReward, 'sole_r1/progress',
                                          guard('progress', self._progress_callback), 50))
        if self._configs['sensing'].observation == 'sim_state_privileged':
            e.append(self.create_subscription(TaskState, 'ground_truth',
                                              guard('ground_truth', self._sim_state), 10))
        if node.teleop:
            e.append(self.create_subscription(Joy, 'joy', guard('joy', robot.joy), 10))
        e.append(self.create_service(Trigger, '~/reset', guard('reset', self._reset_callback)))
        e.append(self.create_service(SetBool, '~/pause', guard('pause', self._pause_callback)))
        e.append(self.create_service(LabelEpisode, '~/label_episode',
                                     guard('label_episode', self._label_callback)))
        self._evaluate = EvaluateAction(self, self.loop, self._running)
        robot.publishers(self.create_publisher(Episode, 'episode', _LATCHED),
                         self.create_publisher(EpisodeResult, 'episode_result', 10),
                         self.create_publisher(Marker, 'sole_r1/learner_marker', 10))
        self._status = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        e += [self._status, self.create_timer(1.0, guard('status', self._publish_status))]

    def _destroy_entities(self) -> None:
        for entity in self._entities:
            destroy_entity(self, entity)
        self._entities = []
        for retired in [r for r in self._retired if not r.busy]:
            retired.destroy()
            self._retired.remove(retired)
        if self._evaluate is not None:
            if self._evaluate.busy:   # aborted, its result still to go out: destroyed later
                self._retired.append(self._evaluate)
            else:
                self._evaluate.destroy()
        if self._robot is not None:
            self._robot.destroy()
        if self._metrics is not None:
            self._metrics.close()
        if self._run_lock is not None:
            self._run_lock.close()   # another learner may use the run directory now
        self.loop = self._robot = self._metrics = self._evaluate = self._run_lock = None
        # The activation froze the heap (gc.freeze): unfrozen, the loop, agent and replay just
        # let go can be collected (each configure-activate-cleanup kept the last for good).
        gc.unfreeze()

    @logged_transition
    def on_activate(self, state: State) -> TransitionCallbackReturn:
        # The last activation's threads first: an actor still in a slow inference had seen the
        # new activation, sent the command it computed before the stop, and driven the arm
        # beside the new actor.
        deadline = time.monotonic() + self._configs['node'].stop_budget_s
        for thread in self._lingering:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._lingering = [t for t in self._lingering if t.is_alive()]
        if self._lingering:
            self.get_logger().error(
                f'not activated: its {" and ".join(t.name for t in self._lingering)} thread '
                'from the last activation is still running (a slow policy inference or '
                'checkpoint); activate again in a moment')
            return TransitionCallbackReturn.FAILURE
        self._running.set()
        self._robot.stopping.clear()
        self.loop.start()
        gc.freeze()   # a full GC of the start-up heap stalled the control loop for 0.2 s
        running, reject = self._running.is_set, self.firewall.reject
        self._threads = [
            threading.Thread(target=self.loop.run_actor, name='actor', daemon=True, args=(
                self._robot.sensors.wait_ready, running,
                lambda: self._configs['sensing'].camera_timeout_s,
                lambda exc: reject('actor', f'{type(exc).__name__}: {exc}'))),
            threading.Thread(target=self.loop.run_learner, name='learner', daemon=True, args=(
                running, lambda step, m: self._metrics.log(step, m, prefix='train'),
                lambda exc: reject('learner', f'{type(exc).__name__}: {exc}')))]
        for thread in self._threads:
            thread.start()
        return super().on_activate(state)

    def settling(self) -> bool:
        """An evaluation goal the stop ended has yet to send its result (``spin.run_node``)."""
        return any(e.busy for e in (self._evaluate, *self._retired) if e is not None)

    @logged_transition
    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self.stop()
        return super().on_deactivate(state)

    @logged_transition
    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self.stop()
        self._destroy_entities()
        return TransitionCallbackReturn.SUCCESS

    @logged_transition
    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        # Finalized, it kept its services, subscriptions and run lock, and the process spun on.
        self.stop()
        self._destroy_entities()
        self.finalized = True   # spin.run_node ends the process
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: State) -> TransitionCallbackReturn:
        """Release everything after a transition raised, so that a configure starts afresh.

        Without it the node went back to unconfigured with its loop, run lock and publishers
        alive: the next configure was refused by its own lock, and the one after doubled the
        command publishers.
        """
        self.get_logger().error(f'a transition from {state.label} failed (logged above); '
                                'the learner is released and may be configured again')
        try:
            self.stop()
        finally:
            self._destroy_entities()
        return TransitionCallbackReturn.SUCCESS

    def stop(self) -> None:
        """Hold the robot, stop both threads, write a checkpoint: within ``stop_budget_s``.

        The actor stops first (it waits in 0.1 s slices) and the hold goes out at once; the
        learner finishes its current update; the checkpoint is written if it fits the rest of
        the budget, else the last periodic one stays. A periodic checkpoint still being written
        by the learner thread is that checkpoint (never two writers at once). Once per
        activation.
        """
        if not self._threads and self._robot is None:
            return   # never activated (or its parameters were refused)
        deadline = time.monotonic() + self._configs['node'].stop_budget_s
        self._running.clear()
        if self._evaluate is not None:   # its goal aborts at the executor's next turn
            self._evaluate.wake()
        if self._robot is not None:
            self._robot.stopping.set()   # a reset in progress gives up
        if self.loop is not None:   # the last command: an actor still deciding sends no more
            self.loop.halt(hold=bool(self._threads))
        for thread in self._threads:
            thread.join(timeout=max(0.1, deadline - time.monotonic() - 1.0))
        if self._robot is not None:
            # what a later hold (a pause while inactive, the next activation) holds is
            # measured then: the arm may be moved by hand meanwhile, and the target of this
            # hold, sent later, was a jump back to it
            self._robot.forget()
        actor = next((t for t in self._threads if t.name == 'actor' and t.is_alive()), None)
        if actor is not None:
            self.get_logger().warning('the actor is still deciding (a slow policy inference); '
                                      'its command will not be sent')
        writing = any(t.is_alive() for t in self._threads if t.name == 'learner')
        if self._threads and self.loop is not None and not writing:
            try:
                path = self.loop.save_checkpoint(budget_s=deadline - time.monotonic())
            except Exception as exc:  # noqa: BLE001 (a full disk, a damaged run directory:
                # the last good checkpoint stays, and the stop goes on)
                self.get_logger().error(f'final checkpoint failed: {type(exc).__name__}: {exc}')
                path = None
            if path is not None:
                self.get_logger().info(f'checkpoint {path}')
        elif writing:
            self.get_logger().warning('the learner thread is still writing a checkpoint; it is '
                                      'the final one (or the last good one stays)')
        self._lingering += [t for t in self._threads if t.is_alive()]
        self._threads = []

    def destroy_node(self) -> None:
        # Destroyed without a cleanup transition (Ctrl-C, a test), it still closes the metrics
        # (TensorBoard keeps up to 2 minutes of events in memory) and its other resources.
        self.stop()
        self._destroy_entities()
        for retired in self._retired:   # spin.run_node gave their results time to go out
            retired.destroy()
        self._retired = []
        super().destroy_node()

    # -- callbacks ------------------------------------------------------------------------------
    def _reward_is_up(self) -> bool:
        """Whether a reward node publishes progress (it creates its publisher once loaded)."""
        up = self.count_publishers(self.resolve_topic_name('sole_r1/progress')) > 0
        if not up:
            self.get_logger().warning('no reward node publishes sole_r1/progress yet (its model '
                                      'may still be loading): the arm holds, no episode begins '
                                      '(wait_for_reward)', throttle_duration_sec=10.0)
        return up

    def _progress_callback(self, msg: ProgressReward) -> None:
        training = self.loop.saw_progress(
            msg.episode_id, Time.from_msg(msg.header.stamp).nanoseconds, msg.progress,
            valid=msg.valid)
        if training:   # an evaluation's answers are not the training curve's
            self._metrics.log(self.loop.learner.env_steps, {
                'progress': msg.progress, 'reward_latency_s': msg.latency}, prefix='reward')

    def _sim_state(self, msg: TaskState) -> str | None:
        """The simulator state as the observation: the privileged baseline only."""
        self.loop.saw_ground_truth(bool(msg.success))
        return self._robot.sensors.add_sim_state(Time.from_msg(msg.header.stamp).nanoseconds,
                                                 msg.state)

    def _reset_callback(self, request, response):
        self.loop.request_reset()
        response.success = True
        response.message = ('a new episode starts when the learner is unpaused'
                            if self.loop.paused else 'a new episode starts at the next step')
        return response

    def _pause_callback(self, request, response):
        self.loop.set_paused(bool(request.data))
        response.success, response.message = True, 'paused' if request.data else 'running'
        return response

    def _label_callback(self, request, response):
        try:
            self.loop.label_episode(request.label)
            response.success, response.message = True, f'episode labelled {request.label}'
        except ValueError as exc:
            response.success, response.message = False, str(exc)
        return response

    def _publish_status(self) -> None:
        self._robot.publish_marker()
        rejected = {**self.firewall.rejected, **self._robot.sensors.rejected}
        status, why = self.loop.status(), self._robot.sensors.stale_reasons()
        stale = list(why)
        # what rqt_robot_monitor should show yellow: the arm holding on a stale input, or
        # learning stopped for want of rewards (a pause or an evaluation is asked for: OK)
        human = self._robot.human.current() if self._robot.human is not None else None
        for_human = ([f'holding for the human: {human.reason}']
                     if human is not None and human.mode == 'hold' else [])
        if for_human:   # a silent Joy while the dead-man is held: the arm held, nothing said
            self.get_logger().warning(for_human[0], throttle_duration_sec=5.0)
        problems = ([f'holding: stale {", ".join(stale)}'] if stale else []) + for_human + (
            ['holding: no reward node publishes progress yet (wait_for_reward)']
            if self.loop.waiting_to_begin else []) + (
            [f'learning paused: {status["learning_paused"]}']
            if status['learning_paused'] not in ('', 'paused', 'evaluating') else []) + (
            ['teleop on but no Joy message heard: a person cannot take over (check the joy '
             'topic and its driver)'] if self._robot.human is not None
            and not self._robot.human.heard else []) + (
            [f'checkpoint failed ({status["checkpoint_error"]}): the run since the last one '
             'is not saved'] if status['checkpoint_error'] else [])
        self._status.publish(status_message(
            self, {**status, 'start_env_steps': self._start_env_steps,
                   'commands': self._robot.output.sent,
                   'limited_by_safety': self._robot.output.limited,
                   'clock_jumps': self._robot.sensors.clock_jumps,
                   'outside_box': self._robot.output.outside_box,
                   'stale': ', '.join(stale) or 'none',
                   'stale_why': '; '.join(f'{k}: {v}' for k, v in why.items()),
                   **{f'rejected/{k}': v for k, v in rejected.items()}},
            level=DiagnosticStatus.WARN if problems else DiagnosticStatus.OK,
            message='; '.join(problems) or 'ok'))


def main(args: list[str] | None = None) -> None:
    keep_freed_memory()   # torch on the CPU: no page faults per update or query
    run_node(LearnerNode, args, on_exit=LearnerNode.stop)


if __name__ == '__main__':
    main()

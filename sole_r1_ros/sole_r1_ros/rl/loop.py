"""The online control loop: observe, act, record, learn; episodes, evaluation, a human's hand.

ROS-free, with the robot injected (``Robot``): the learner node gives it topics and services,
the benchmarks give it a simulator called directly, so both run this same loop. One ``step``
is one control period of the actor: it never waits for rewards or learning. ``learn`` is one
round of gradient updates, called from a learner thread (node) or inline (bench). Safety is the
robot's ``send``/``hold``: they clamp every command, the policy's and a human's, last.
"""
from collections import deque
from dataclasses import dataclass
import enum
import logging
import threading
import time
from typing import Callable, Mapping, Protocol
import uuid

import numpy as np

from sole_r1_ros.configuration import option, validate
from sole_r1_ros.rl.episodes import Evaluation
from sole_r1_ros.rl.online import OnlineLearner
from sole_r1_ros.rl.sensing import Sensed

logger = logging.getLogger(__name__)

LABELS = ('success', 'failure')


@dataclass(frozen=True)
class LoopConfig:
    """Episode and learning rhythm of the control loop."""

    control_rate_hz: float = option(10.0, 'at most one action per period; a faster camera is '
                                    'subsampled [Hz]', range=(0.1, 1000.0), read_only=True)
    pace_to_control_rate: bool = option(
        True, 'act at most once per control period of wall-clock time (a camera faster than '
        'the control rate is subsampled); false for a lock-step simulator, whose steps take '
        'simulated time, so it runs as fast as it can', read_only=True)
    episode_length: int = option(100, 'steps per episode', range=(2, 10**7))
    reward_timeout_s: float = option(30.0, 'learning pauses when no progress reward came for '
                                     'this long; control carries on [s]', range=(0.1, 86400.0))
    updates_per_round: int = option(8, 'most gradient updates per learning round',
                                    range=(1, 10000))
    checkpoint_every_s: float = option(60.0, 'seconds between checkpoints [s]',
                                       range=(1.0, 86400.0))
    label_wait_s: float = option(10.0, 'an evaluation episode waits this long for the answer '
                                 'about its last frame [s]', range=(0.0, 3600.0))
    human_label_reward: bool = option(False, "a human's success/failure label also sets the "
                                      "episode's last progress to 100/0 (off: the reward model "
                                      'stays the only reward)')

    def __post_init__(self) -> None:
        validate(self)


class Robot(Protocol):
    """What the loop needs of a robot.

    Every method returns promptly and never raises for a robot-side problem (it logs, counts
    and holds instead).
    """

    def observe(self) -> Sensed | None:
        """The newest whole observation, or None when an input is stale or missing."""

    def send(self, action: np.ndarray, sensed: Sensed) -> bool | None:
        """Command ``action`` (policy space, [-1, 1]) after the safety limits.

        False when it held instead (an input went stale since ``observe``): not acted.
        """

    def hold(self) -> None:
        """Command no motion."""

    def reset(self) -> bool:
        """Bring the robot to a start state (blocking, bounded); False if it failed."""

    def announce(self, episode_id: str, evaluation: bool = False,
                 since_ns: int | None = None) -> None:
        """Tell the graph an episode starts (``''``: the running one ended).

        ``evaluation``: the episode evaluates the policy. ``since_ns``: the frames from this
        stamp on belong to the new episode, or to none (default: now).
        """

    def episode_finished(self, summary: 'EpisodeSummary') -> None:
        """Publish / log a finished episode."""


class Human(Protocol):
    """A teleoperation source (``rl.teleop.Teleop`` fits)."""

    def current(self) -> 'object':
        """A decision with ``mode`` ('policy', 'human', 'hold') and ``action``."""

    def pop_label(self) -> str | None:
        """'success' / 'failure' pressed since the last call, or None."""

    def drop_labels(self) -> int:
        """Forget the labels not taken yet; returns how many."""


class Outcome(enum.Enum):
    """What one ``step`` did."""

    ACTED = 'acted'
    HELD = 'held'
    NEW_EPISODE = 'new_episode'


@dataclass(frozen=True)
class EpisodeSummary:
    """One finished episode, for logs, the episode topic and the run directory."""

    episode_id: str
    steps: int
    evaluation: bool
    intervened_steps: int
    label: str | None
    '''A human's 'success' / 'failure', or None.'''
    env_steps: int
    '''Training environment steps so far.'''
    counted: bool = True
    '''False for an evaluation episode the evaluation does not score (another replaces it).'''

    @property
    def intervention_rate(self) -> float:
        return self.intervened_steps / self.steps if self.steps else 0.0


class ControlLoop:
    """Act at the control rate, store transitions with pending rewards, and learn.

    Thread-safety: ``step`` runs on one actor thread; ``learn`` on one learner thread;
    ``request_reset``, ``set_paused``, ``label_episode``, ``saw_progress`` and the evaluation
    calls may come from any thread.
    """

    def __init__(self, learner: OnlineLearner, robot: Robot, config: LoopConfig,
                 observation: Callable[[Sensed], Mapping[str, np.ndarray]],
                 human: Human | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 may_begin: Callable[[], bool] | None = None) -> None:
        """Wire the loop to its learner, robot and (optionally) a person.

        Args:
            learner: the agent, replay and checkpoints.
            robot: observe / send / hold / reset / announce, see ``Robot``.
            config: episode length, rates, timeouts.
            observation: turns a ``Sensed`` into the agent's observation dict
                (``rl.preprocess.prepare_observation`` with the agent's config).
            human: a teleoperation source; None: the policy always drives.
            clock: monotonic seconds (tests inject one).
            may_begin: whether an episode may begin now (a reward source is up); while it
                says no the arm holds between episodes. None: always.
        """
        self.learner = learner
        self._may_begin = may_begin
        self.waiting_to_begin = False   # an episode is due and ``may_begin`` says no
        self.config = config
        self._robot = robot
        self._observation = observation
        self._human = human
        self._clock = clock
        self._lock = threading.Lock()
        self._episode_id: str | None = None
        self._episode_is_evaluation = False
        self._episode_over = False
        self._reset_requested = False
        self._paused = False
        self._halted = False   # stopped (deactivated): no command at all until ``start``
        self._step = 0
        self._intervened = 0
        self._label: str | None = None
        self._last_frame: tuple[int, int] | None = None   # (stamp, step) of the last record
        self._last_seen_ns: int | None = None   # the episode's newest frame the loop acted on
        self._end_announced = False
        self._closed = False   # the episode's last frame (no action) is recorded
        self._evaluation: Evaluation | None = None
        self._reset_done = False   # the robot was reset while paused: the episode waits
        self.checkpoint_error = ''   # why the last checkpoint failed; '' once one is written
        self._last_saved_s: float | None = None
        self._last_checkpoint_s = clock()
        self._checkpointed: tuple[int, ...] | None = None
        self._seconds_per_frame = 0.0
        self._last_checkpoint_took_s = 0.0
        self.held = 0
        self.invalid_rewards = 0   # answers the reward node marked invalid: not labels
        self.learning_paused = ''
        # the recent evaluation episodes: their answers that come late are not the training's
        self._evaluation_episodes: deque[str] = deque(maxlen=64)

    # -- requests from any thread ------------------------------------------------------------
    def request_reset(self) -> None:
        """End the running episode at the next step and start a new one."""
        self._release_silent_human()
        with self._lock:
            self._reset_requested = True

    def set_paused(self, paused: bool) -> None:
        """Pause (hold the robot, stop learning) or resume.

        Halted, nothing is sent (the pause holds from ``start`` on). Resuming ends the episode
        that was running, as a reset does: its last frame before the pause and its first after
        were stored as one transition, whatever the pause's hold did or a person moved.
        """
        self._release_silent_human()
        with self._lock:   # the actor sends under this lock: no motion follows this hold
            resumed = self._paused and not paused and self._episode_id is not None \
                and self._step > 0
            self._paused = paused
            if paused and not self._halted:
                self._robot.hold()
            if resumed:
                self._reset_requested = True
        if resumed:
            logger.info('resumed: the episode that ran before the pause ends, and a new one '
                        'begins after the reset')

    def _release_silent_human(self) -> None:
        """A person's pause or reset releases a dead-man whose device went silent."""
        release = getattr(self._human, 'release_if_silent', None)
        if release is not None and release():
            logger.warning('the teleop device went silent with its dead-man held: handed back '
                           'to the policy by the pause or reset')

    def halt(self, hold: bool = True) -> None:
        """Send the last hold and no command after it until ``start``, whatever still runs.

        An actor thread in a slow inference when the node stops sent its command after the
        final hold (the hold went out at the join's timeout): the arm moved after the stop.
        ``hold`` False: not even that hold (a loop that never ran).
        """
        with self._lock:   # the actor sends under this lock: this hold is the last word
            self._halted = True
            if hold:
                self._robot.hold()

    def start(self) -> None:
        """Commands may go out again (an activation after ``halt``)."""
        with self._lock:
            self._halted = False

    def label_episode(self, label: str) -> None:
        """A human ends the running episode with 'success' or 'failure'.

        Raises:
            ValueError: another label.
        """
        if label not in LABELS:
            raise ValueError(f'label must be one of {LABELS}, got {label!r}')
        with self._lock:
            if self._episode_id is None or self._episode_over or self._reset_requested:
                raise ValueError('no episode is running to label (the first has not begun, or '
                                 'the last one is ending)')
            self._label = label
            self._episode_over = True

    def start_evaluation(self, threshold: float, episodes: int | None = None) -> Evaluation:
        """Run deterministic episodes from the next step until ``stop_evaluation``.

        With ``episodes``, the robot holds once that many have begun (none is begun only to be
        cut short when the evaluation ends).
        """
        evaluation = Evaluation(threshold, label_wait_s=self.config.label_wait_s,
                                episodes=episodes)
        with self._lock:
            self._evaluation = evaluation
            self._reset_requested = True
        return evaluation

    def stop_evaluation(self, evaluation: Evaluation | None = None) -> None:
        """End ``evaluation`` (default: the running one); another one that replaced it runs on."""
        with self._lock:
            if evaluation is not None and self._evaluation is not evaluation:
                return
            self._evaluation = None
            self._reset_requested = True

    @property
    def evaluating(self) -> bool:
        return self._evaluation is not None

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def episode_id(self) -> str | None:
        return self._episode_id

    def saw_progress(self, episode_id: str, stamp_ns: int, progress: float,
                     valid: bool = True) -> bool:
        """A reward-model answer arrived: label the transition, or score the evaluation.

        An invalid answer (unparseable, or the server failed: the reward node carries the last
        progress forward) labels nothing: the frames between two real answers are filled from
        both, and with none at all learning pauses (``reward_timeout_s``) instead of learning
        a flat progress the model never gave. An evaluation episode whose last frame's answer
        is invalid is not scored (``episodes_unscored``).

        Returns:
            False for an evaluation episode's answer, also one that comes after its evaluation
            ended (it was counted an unmatched label): not the training's.
        """
        evaluation = self._evaluation
        if evaluation is not None and evaluation.saw_progress(episode_id, progress, stamp_ns,
                                                              valid):
            return False   # an evaluation episode's: nothing to label (it was not recorded)
        if episode_id in self._evaluation_episodes:
            return False   # late, after its evaluation ended
        if not valid:
            self.invalid_rewards += 1
            return True
        self.learner.label(episode_id, stamp_ns, progress)
        return True

    def saw_ground_truth(self, success: bool) -> None:
        """Simulator ground truth, for evaluation reports only (never a reward)."""
        evaluation = self._evaluation
        if evaluation is not None:
            evaluation.saw_ground_truth(success)

    # -- the actor ------------------------------------------------------------------------------
    def step(self) -> Outcome:
        """One control period: a new episode when one is due, else observe and act (or hold)."""
        with self._lock:
            if self._halted:   # an actor outliving the stop: nothing more goes out
                return Outcome.HELD
            paused = self._paused
            new_episode = (self._episode_id is None or self._reset_requested
                           or self._episode_over)
        if paused:
            self._robot.hold()
            return Outcome.HELD
        if self._human is not None and (label := self._human.pop_label()):
            try:
                self.label_episode(label)
                new_episode = True
            except ValueError as exc:   # a button pressed between episodes
                logger.warning('label %r from the Joy buttons ignored: %s', label, exc)
        if new_episode:
            self._close_episode()
            self._finish_episode()
            self.waiting_to_begin = self._may_begin is not None and not self._may_begin()
            if self.waiting_to_begin:   # no reward source: no episode, the arm holds
                with self._lock:
                    self._episode_id = None
                self._robot.hold()
                return Outcome.HELD
            evaluation = self._evaluation
            if evaluation is not None and evaluation.all_started:
                with self._lock:   # the last one's answers are due: hold, begin none
                    self._episode_id = None
                self._robot.hold()
                return Outcome.HELD
            return Outcome.NEW_EPISODE if self._begin_episode() else Outcome.HELD
        sensed = self._robot.observe()
        if sensed is None:
            self.held += 1
            self._robot.hold()
            return Outcome.HELD
        self._last_seen_ns = sensed.stamp_ns
        obs = self._observation(sensed)
        training = not self._episode_is_evaluation
        if self._step >= self.config.episode_length:   # before acting: no action is wasted
            if training:
                self.learner.record(obs, None, sensed.stamp_ns)
                self._last_frame, self._closed = (sensed.stamp_ns, self._step), True
            with self._lock:
                self._episode_over = True
            self._announce_end()   # before the hold: its frame is not the episode's
            self._robot.hold()
            return Outcome.HELD
        action, intervened = self._decide(obs)
        if action is None:   # the human's input is invalid: hold, never fall back silently
            self.held += 1
            self._robot.hold()
            return Outcome.HELD
        with self._lock:   # paused during the policy's inference: no command after its hold
            if self._halted:
                return Outcome.HELD
            if self._paused:
                self._robot.hold()
                return Outcome.HELD
            sent = self._robot.send(action, sensed) is not False
        if not sent:   # an input went stale during the inference: the robot held
            self.held += 1
            return Outcome.HELD
        if training:
            self.learner.record(obs, action, sensed.stamp_ns, intervened=intervened)
            self._last_frame = (sensed.stamp_ns, self._step)
        self._step += 1
        self._intervened += int(intervened)
        return Outcome.ACTED

    def _decide(self, obs: Mapping[str, np.ndarray]) -> tuple[np.ndarray | None, bool]:
        """The policy's action, or the human's when the dead-man is held.

        The human's input is read after the policy's inference, so a Joy message that arrived
        during it acts on this step's command rather than the next.
        """
        explore = not self._episode_is_evaluation
        action = None
        if self._human is None or self._human.current().mode == 'policy':
            action = self.learner.agent.act(obs, explore=explore)
        if self._human is not None:
            decision = self._human.current()
            if decision.mode == 'hold':
                return None, False
            if decision.mode == 'human':
                return np.asarray(decision.action, np.float32), True
            if action is None:   # handed back during the check
                action = self.learner.agent.act(obs, explore=explore)
        return action, False

    def _begin_episode(self) -> bool:
        """Announce the end, reset the robot, announce the new episode; False: not yet.

        The end is announced before the reset, so frames of the reset itself belong to no
        episode, and as from just after the frame the loop last acted on: the camera node's
        final query is then that frame, the one the episode was recorded (or is scored) to
        end on. Announced as of now, it was the frame the closing hold made, one the learner
        never recorded: every episode's last answer was unmatched.
        """
        if not self._reset_done:
            self._announce_end()
            self._robot.hold()
            if not self._robot.reset():
                logger.error('robot reset failed; the next episode starts where the robot is')
            with self._lock:
                if self._paused:   # during the reset: a person puts the scene back longer
                    # The episode begins when the learner is unpaused, from the scene as it
                    # is then: announced now, its first (0 %) frame was of the scene half
                    # put back, and every answer of the pause scored against it.
                    self._reset_done, self._episode_id = True, None
                    return False
        self._reset_done = False
        name = f'episode-{uuid.uuid4().hex[:8]}'
        # Read and cleared at one moment: an evaluation started or stopped after this restarts
        # the episode (its restart was erased, and the episode ran on in the wrong mode).
        with self._lock:
            evaluation = self._evaluation
            self._reset_requested = False
        self._robot.announce(name, evaluation=evaluation is not None)
        self._robot.hold()   # a lock-step simulator renders its first frame on a command
        if self._human is not None and (dropped := self._human.drop_labels()):
            # pressed during the reset or a second time: meant for the episode that ended, so
            # it must not end this one at step 0 (the ~/label_episode service refuses it too)
            logger.warning('%d label(s) from the Joy buttons pressed between episodes ignored',
                           dropped)
        if evaluation is not None:
            evaluation.episode_started(name)
            self._evaluation_episodes.append(name)
        else:
            self.learner.start_episode(name)
        with self._lock:
            self._episode_id, self._step, self._intervened, self._label = name, 0, 0, None
            self._episode_is_evaluation = evaluation is not None
            self._episode_over = False
            self._last_frame, self._closed, self._last_seen_ns = None, False, None
            self._end_announced = False
        return True

    def _announce_end(self) -> None:
        """Announce the running episode's end (once) as of just after the last frame acted on.

        At the time limit this goes out before the closing hold, so the camera node has it
        before the hold's frame (in lock-step the hold makes that frame): a query of that frame
        would be the episode's newest and the final query, of the real last frame, would come
        after it and be dropped as stale.
        """
        if self._end_announced:
            return
        self._end_announced = True
        self._robot.announce('', since_ns=None if self._last_seen_ns is None
                             else self._last_seen_ns + 1)

    def _close_episode(self) -> None:
        """Record the frame a label or a reset ends a training episode on.

        The time limit records its own. Without it the replay never sees the episode end: the
        last frame keeps its action and no successor, so the n-step windows of the last n steps
        (the success a person labelled among them) are never sampled, and the episode is not
        counted as done. A stale observation records nothing: those windows stay lost.
        """
        if (self._episode_id is None or self._episode_is_evaluation or self._closed
                or self._last_frame is None):
            return
        sensed = self._robot.observe()
        if sensed is None or sensed.stamp_ns <= self._last_frame[0]:
            return
        self.learner.record(self._observation(sensed), None, sensed.stamp_ns)
        self._last_frame, self._closed = (sensed.stamp_ns, self._step), True
        self._last_seen_ns = sensed.stamp_ns

    def _finish_episode(self) -> None:
        if self._episode_id is None:
            return
        training = not self._episode_is_evaluation
        evaluation = self._evaluation
        not_counted = ''   # why an evaluation episode does not measure the policy
        if not training and evaluation is None:   # its evaluation was cancelled or aborted
            not_counted = 'was cut short: its evaluation ended'
            logger.warning('evaluation episode %s %s after %d steps: not counted',
                           self._episode_id, not_counted, self._step)
        elif not training:
            with self._lock:
                cut_short = self._reset_requested and not self._episode_over
            # a person's ~/reset (its last answer would be scored as its end), a person's
            # verdict (the policy's is not known), the dead-man (live for safety; the score is
            # not the person's)
            not_counted = (
                'was cut short by a reset' if cut_short
                else f'was ended by a label ({self._label}) after {self._step} steps'
                if self._label
                else f'had a human drive {self._intervened} of its {self._step} steps'
                if self._intervened else '')
            if not_counted:
                logger.warning('evaluation episode %s %s: not counted, another begins in its '
                               'place', self._episode_id, not_counted)
                evaluation.episode_discarded()
            else:
                evaluation.episode_finished(last_ns=self._last_seen_ns)
        label = self._label
        if label and training and self.config.human_label_reward and self._last_frame:
            # the person's verdict wins over an answer the model gave that frame
            self.learner.label(self._episode_id, self._last_frame[0],
                               100.0 if label == 'success' else 0.0, overwrite=True)
        self._robot.episode_finished(EpisodeSummary(
            self._episode_id, self._step, not training, self._intervened, label,
            self.learner.env_steps, not not_counted))

    # -- the learner ----------------------------------------------------------------------------
    def learn(self, keep_going: Callable[[], bool] = lambda: True) -> dict[str, float] | None:
        """One round of updates (at most ``updates_per_round``); None when none ran.

        Learning pauses while paused or evaluating, and while no reward came for
        ``reward_timeout_s`` (``learning_paused`` says why); control never does. Writes a
        checkpoint every ``checkpoint_every_s`` while anything changed, learning or not (the
        actor records frames while the rewards are late), and none once a stop was asked for
        (the stop writes its own, if it fits).
        """
        metrics = None
        if self._paused or self._evaluation is not None:
            self.learning_paused = 'paused' if self._paused else 'evaluating'
        elif self._clock() - self.learner.last_label_s > self.config.reward_timeout_s:
            self.learning_paused = 'no progress rewards lately'
        else:
            self.learning_paused = ''
            metrics = self.learner.learn(self.config.updates_per_round, keep_going)
        if (keep_going()
                and self._clock() - self._last_checkpoint_s > self.config.checkpoint_every_s
                and self._checkpointed != self._progress_counts()):
            self.save_checkpoint()
        return metrics

    def _progress_counts(self) -> tuple[int, ...]:
        """What a checkpoint would hold that the last one does not, if these changed."""
        stats = self.learner.stats()
        return (stats['env_steps'], stats['updates'], stats.get('labelled', 0))

    # -- the node's two threads ----------------------------------------------------------------
    def run_actor(self, wait_ready: Callable[[float], bool], running: Callable[[], bool],
                  stale_after_s: Callable[[], float],
                  on_error: Callable[[Exception], None]) -> None:
        """Act on each new moment until ``running()`` is false (an actor thread's body).

        Waits for a new observation in slices of at most 0.1 s (so a stop is quick); once none
        came for ``stale_after_s()``, ``step`` runs anyway and holds the robot. With
        ``pace_to_control_rate`` (a real arm), actions are at least a control period apart,
        and the robot is held once no new one came for 1.5 periods: a velocity command stays
        in force until the next, and had run on until ``stale_after_s`` (172 mm at 2 s) past
        the one period of motion the safety box allowed it. An error holds the robot and is
        reported; the loop goes on.
        """
        period, last = 1.0 / self.config.control_rate_hz, 0.0
        paced = self.config.pace_to_control_rate
        held_since_step = False
        while running():
            ready = wait_ready(min(0.1, period / 2) if paced else 0.1)
            since = time.monotonic() - last
            if not ready and since < stale_after_s():
                if paced and last and not held_since_step and since >= 1.5 * period:
                    self._robot.hold()
                    held_since_step = True
                continue
            if since < period and self.config.pace_to_control_rate:
                # a camera faster than the control rate; a full period, which the speed limit
                # assumes (0.8 of one let steps come at 1.25 times the speed)
                time.sleep(period - since)
            try:
                self.step()
                last, held_since_step = time.monotonic(), False
            except Exception as exc:  # never leave the robot moving on an error
                self._robot.hold()
                on_error(exc)

    def run_learner(self, running: Callable[[], bool],
                    on_metrics: Callable[[int, dict[str, float]], None],
                    on_error: Callable[[Exception], None]) -> None:
        """Learn until ``running()`` is false (a learner thread's body).

        Metrics go to ``on_metrics`` every 50 updates. An error pauses learning for a second;
        control is never affected.
        """
        logged = -50
        while running():
            try:
                metrics = self.learn(keep_going=running)
                if metrics is not None and self.learner.agent.updates >= logged + 50:
                    logged = self.learner.agent.updates
                    on_metrics(logged, metrics)   # inside: a failing log ended the thread
            except Exception as exc:  # learning stops a moment; control carries on
                on_error(exc)
                metrics = None
                time.sleep(1.0)
            if metrics is None:
                time.sleep(0.05)

    def status(self) -> dict[str, object]:
        """Counters for the node's diagnostics and the run's progress bar."""
        stats = self.learner.stats()
        values = {k: stats[k] for k in ('env_steps', 'learning_steps', 'episodes_done',
                                        'updates', 'labelled_share', 'pending',
                                        'unmatched_labels', 'rejected_labels')}
        values.update(held=self.held, invalid_rewards=self.invalid_rewards,
                      learning_paused=self.learning_paused,
                      evaluating=self.evaluating, paused=self._paused,
                      checkpoint_error=self.checkpoint_error,
                      checkpoint_age_s=(-1 if self._last_saved_s is None
                                        else round(self._clock() - self._last_saved_s)))
        return values

    def save_checkpoint(self, budget_s: float | None = None):
        """Write a checkpoint now; returns its path (None: no checkpoint folder, or skipped).

        With ``budget_s`` (a shutdown's deadline), a checkpoint that would take longer, judged
        by the last one's time and time per frame of images, is skipped: the last good one
        stays, and a write is never cut off half way (a killed writer leaves the previous one
        anyway). A checkpoint writes the frames stored since the last one (whole segments).
        """
        frames = self.learner.unsaved_frames()
        estimate = self._last_checkpoint_took_s + self._seconds_per_frame * frames
        if budget_s is not None and estimate > budget_s:
            logger.warning('no final checkpoint: writing %d frames would take about %.0f s '
                           '(budget %.0f s); the one from %.0f s ago is kept', frames,
                           estimate, budget_s, self._clock() - self._last_checkpoint_s)
            return None
        start = self._last_checkpoint_s = self._clock()
        self._checkpointed = self._progress_counts()
        try:
            path = self.learner.save()
        except Exception as exc:   # said on /diagnostics until one is written again
            self.checkpoint_error = f'{type(exc).__name__}: {exc}'
            self._checkpointed = None   # tried again at the next interval
            raise
        self.checkpoint_error, self._last_saved_s = '', self._clock()
        # what the next one will take: this one's time, and per frame of images, measured on
        # a checkpoint that wrote some (one with none, labels only, says nothing of that)
        took, written = self._clock() - start, self.learner.last_saved_frames
        self._last_checkpoint_took_s = took
        if written:
            self._seconds_per_frame = took / written
        return path

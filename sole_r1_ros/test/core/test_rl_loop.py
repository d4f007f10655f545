"""The online learner and its control loop without ROS.

Episodes, holding, a human, evaluation, stamp-matched labels, pausing learning, and checkpoints
that are never thrown away.
"""
import math
import time

import numpy as np
import pytest

from sole_r1_ros.rl import Evaluation, LoopConfig, Sensed
from sole_r1_ros.rl.poses import checked_pose

torch = pytest.importorskip('torch')

from sole_r1_ros.rl import (  # noqa: E402
    CheckpointError, ControlLoop, DrQConfig, LabelOutcome, OnlineLearner, Outcome, ReplayConfig)

STEP_NS = 100_000_000


class FakeRobot:
    """rl.loop.Robot that records what the loop did; observe() can be made stale."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.stamp_ns = 10**9
        self.stale = False
        self.reset_ok = True
        self.summaries = []
        self.ends = []   # since_ns of each end announcement

    def observe(self):
        if self.stale:
            return None
        self.stamp_ns += STEP_NS
        pose = checked_pose([0.0, 0.6, 0.2], [0.0, 0.0, 0.0, 1.0])
        return Sensed(self.stamp_ns, np.full(3, self.stamp_ns % 7, np.float32), {},
                      np.zeros(2), pose)

    def send(self, action, sensed):
        self.calls.append(('send', np.asarray(action).copy()))

    def hold(self):
        self.calls.append(('hold',))

    def reset(self):
        self.calls.append(('reset',))
        return self.reset_ok

    def announce(self, episode_id, evaluation=False, since_ns=None):
        self.calls.append(('announce', episode_id, evaluation))
        if not episode_id:
            self.ends.append(since_ns)

    def episode_finished(self, summary):
        self.summaries.append(summary)

    def kinds(self):
        return [c[0] for c in self.calls]


class FakeHuman:
    def __init__(self, mode='policy', action=None):
        self.mode, self.action, self.labels = mode, action, []

    def current(self):
        from sole_r1_ros.rl import TeleopDecision
        return TeleopDecision(self.mode, self.action, 'test')

    def pop_label(self):
        return self.labels.pop(0) if self.labels else None

    def drop_labels(self):
        dropped, self.labels = len(self.labels), []
        return dropped


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _learner(tmp_path=None, meaning=None, **replay):
    return OnlineLearner(DrQConfig(seed_steps=0, batch_size=4),
                         ReplayConfig(min_labelled=1, capacity=200, **replay), 3, 4,
                         checkpoint_dir=tmp_path, stamp_tolerance_s=0.05, meaning=meaning)


def _loop(robot, learner=None, human=None, clock=None, **config):
    config = LoopConfig(**{'episode_length': 5, **config})
    return ControlLoop(learner or _learner(), robot, config, lambda s: {'state': s.state},
                       human=human, clock=clock or Clock())


def test_an_episode_is_announced_reset_acted_recorded_and_closed():
    robot = FakeRobot()
    loop = _loop(robot)
    assert loop.step() is Outcome.NEW_EPISODE
    assert robot.kinds() == ['announce', 'hold', 'reset', 'announce', 'hold']
    assert robot.calls[0] == ('announce', '', False) and robot.calls[3][1].startswith('episode-')
    outcomes = [loop.step() for _ in range(6)]
    assert outcomes == [Outcome.ACTED] * 5 + [Outcome.HELD]   # the 6th frame ends it
    assert loop.learner.env_steps == 5 and loop.learner.episodes_done == 1
    assert loop.learner.agent.env_steps == 5   # the exploration clock: no action unsent
    last = robot.stamp_ns                      # the frame recorded as the episode's end
    assert loop.step() is Outcome.NEW_EPISODE
    # announced as ended just after it, so the final reward query is of that frame
    assert robot.ends == [None, last + 1]   # the first: no episode before it
    (summary,) = robot.summaries
    assert summary.steps == 5 and not summary.evaluation and summary.label is None


def test_an_error_in_a_step_holds_the_robot_and_the_actor_goes_on():
    """A raise in the policy or the safety code must not leave the last velocity in force."""
    robot = FakeRobot()
    loop = _loop(robot)
    loop.step()   # the episode begins

    def send_fails(action, sensed):
        robot.calls.append(('send',))
        raise RuntimeError('inference failed')
    robot.send = send_fails
    rounds, errors = iter(range(3)), []
    loop.run_actor(lambda timeout_s: True, lambda: next(rounds, None) is not None,
                   lambda: 1.0, errors.append)
    assert [str(e) for e in errors] == ['inference failed'] * 3
    tail = robot.kinds()[-6:]
    assert tail == ['send', 'hold'] * 3, robot.kinds()


def test_a_pause_during_the_reset_holds_the_next_episode_until_unpaused():
    """A pause during a hand reset gives the person longer: the next episode waits for it.

    The next episode was announced anyway, its first (0 %) frame of the scene half put back,
    and the pause's frames were queried against it.
    """
    robot = FakeRobot()
    loop = _loop(robot)
    loop.step()
    for _ in range(5):
        loop.step()

    def reset_and_pause():   # a person presses pause while putting the scene back
        robot.calls.append(('reset',))
        loop.set_paused(True)
        return True
    robot.reset = reset_and_pause
    robot.calls.clear()
    assert loop.step() is Outcome.HELD     # the 6th frame ends the episode
    assert loop.step() is Outcome.HELD     # reset; paused in it: no new episode
    assert loop.step() is Outcome.HELD
    assert [c for c in robot.calls if c[0] == 'announce'] == [('announce', '', False)]
    assert loop.episode_id is None
    robot.reset = lambda: robot.calls.append(('reset',)) or True
    loop.set_paused(False)
    assert loop.step() is Outcome.NEW_EPISODE
    assert robot.kinds().count('reset') == 1                 # not reset again
    assert robot.calls[-2][0] == 'announce' and robot.calls[-2][1].startswith('episode-')


def test_stale_observations_hold_and_record_nothing():
    robot = FakeRobot()
    loop = _loop(robot)
    loop.step()
    robot.stale = True
    robot.calls.clear()
    assert [loop.step() for _ in range(3)] == [Outcome.HELD] * 3
    assert robot.kinds() == ['hold'] * 3 and loop.held == 3
    assert loop.learner.env_steps == 0


def test_pause_holds_and_stops_learning_and_a_failed_reset_still_starts_an_episode():
    robot = FakeRobot()
    robot.reset_ok = False
    loop = _loop(robot)
    assert loop.step() is Outcome.NEW_EPISODE and loop.episode_id
    loop.set_paused(True)
    assert loop.step() is Outcome.HELD and loop.learn() is None
    assert loop.learning_paused == 'paused'
    loop.set_paused(False)
    assert loop.step() is Outcome.ACTED


def test_resuming_ends_the_episode_the_pause_cut_in_two():
    """Its frames before and after a pause were stored as one transition (0.2 s and 600 s)."""
    robot = FakeRobot()
    loop = _loop(robot, episode_length=50)
    loop.step()
    first = loop.episode_id
    assert [loop.step() for _ in range(3)] == [Outcome.ACTED] * 3
    loop.set_paused(True)
    assert loop.step() is Outcome.HELD
    loop.set_paused(False)
    assert loop.step() is Outcome.NEW_EPISODE and loop.episode_id != first
    assert robot.summaries[-1].episode_id == first and robot.kinds().count('reset') == 2


def test_an_evaluation_of_n_episodes_begins_no_more_than_n():
    robot = FakeRobot()
    loop = _loop(robot)
    loop.step()
    evaluation = loop.start_evaluation(threshold=50.0, episodes=1)
    assert loop.step() is Outcome.NEW_EPISODE            # the evaluation episode
    for _ in range(6):
        loop.step()                                      # ... ends at its length
    robot.calls.clear()
    assert [loop.step() for _ in range(3)] == [Outcome.HELD] * 3   # its answer is due: hold
    assert set(robot.kinds()) == {'hold'} and evaluation.all_started
    loop.stop_evaluation(evaluation)
    assert loop.step() is Outcome.NEW_EPISODE            # training again
    assert len([s for s in robot.summaries if s.evaluation]) == 1
    # its answer, late: not the training's (it was counted an unmatched label)
    evaluated = [s.episode_id for s in robot.summaries if s.evaluation][0]
    assert not loop.saw_progress(evaluated, robot.stamp_ns, 80.0)
    assert loop.learner.unmatched_labels == 0
    assert loop.saw_progress(loop.episode_id, robot.stamp_ns, 10.0)   # the training's


def test_an_evaluation_episode_a_reset_cuts_short_is_not_counted_and_another_begins():
    robot = FakeRobot()
    loop = _loop(robot)
    loop.step()
    evaluation = loop.start_evaluation(threshold=50.0, episodes=1)
    assert loop.step() is Outcome.NEW_EPISODE
    cut = loop.episode_id
    loop.step()
    loop.saw_progress(cut, robot.stamp_ns, 95.0)         # an answer before the reset
    loop.request_reset()                                 # a person restarts the episode
    assert loop.step() is Outcome.NEW_EPISODE and loop.episode_id != cut
    second = loop.episode_id
    for _ in range(6):
        loop.step()                                      # the new one runs its length
    assert loop.step() is Outcome.HELD and evaluation.all_started
    loop.saw_progress(second, robot.stamp_ns, 10.0)      # its last answer
    assert evaluation.wait_episode(timeout=1.0)
    assert [(o.episode_id, o.final_progress) for o in evaluation.finished] == [(second, 10.0)]
    assert not evaluation.wait_episode(timeout=0.0)      # the cut one is never scored


def test_an_evaluation_episode_a_human_drove_is_not_counted_as_the_policys():
    robot = FakeRobot()
    human = FakeHuman()
    loop = _loop(robot, human=human)
    loop.step()
    evaluation = loop.start_evaluation(threshold=50.0, episodes=1)
    loop.step()
    driven = loop.episode_id
    human.mode, human.action = 'human', np.array([0.9, 0.0, 0.0, 0.0], np.float32)
    assert loop.step() is Outcome.ACTED                  # the dead-man still works
    assert np.allclose(robot.calls[-1][1], [0.9, 0.0, 0.0, 0.0])
    human.mode = 'policy'
    for _ in range(5):
        loop.step()
    loop.saw_progress(driven, robot.stamp_ns, 100.0)     # its last answer
    assert loop.step() is Outcome.NEW_EPISODE and loop.episode_id != driven
    second = loop.episode_id                             # begun in its place
    for _ in range(6):
        loop.step()
    assert loop.step() is Outcome.HELD                   # ended: the evaluation's last one
    loop.saw_progress(second, robot.stamp_ns, 10.0)
    assert evaluation.wait_episode(timeout=1.0)
    assert [(o.episode_id, o.final_progress) for o in evaluation.finished] == [(second, 10.0)]


def test_a_pause_during_the_policys_inference_sends_no_command():
    robot = FakeRobot()
    loop = _loop(robot)
    loop.step()
    act = loop.learner.agent.act

    def slow_act(*args, **kwargs):   # the pause service answers while the policy thinks
        loop.set_paused(True)
        return act(*args, **kwargs)
    loop.learner.agent.act = slow_act
    robot.calls.clear()
    assert loop.step() is Outcome.HELD
    assert 'send' not in robot.kinds() and loop.learner.env_steps == 0


def test_a_halt_during_the_policys_inference_is_the_last_command_until_a_start():
    """The node's stop held at its join's timeout; an actor in a slow inference sent after."""
    robot = FakeRobot()
    loop = _loop(robot)
    loop.step()
    act = loop.learner.agent.act

    def slow_act(*args, **kwargs):   # the node stops while the policy thinks
        loop.halt()
        return act(*args, **kwargs)
    loop.learner.agent.act = slow_act
    robot.calls.clear()
    assert loop.step() is Outcome.HELD and robot.kinds() == ['hold']
    loop.learner.agent.act = act
    loop.set_paused(True)                                  # a pause while halted: nothing sent
    loop.set_paused(False)
    assert loop.step() is Outcome.HELD and robot.kinds() == ['hold']
    loop.start()
    assert loop.step() is Outcome.ACTED and robot.kinds()[-1] == 'send'


def test_a_pause_that_comes_as_the_command_goes_out_is_the_last_word():
    """The pause's hold is never followed by the step's motion command.

    The step checked the pause, then recorded, then sent, outside the loop's lock: a pause
    answered in between held the robot and the motion went out after it.
    """
    import threading
    robot = FakeRobot()
    loop = _loop(robot)
    loop.step()
    send, pausing = robot.send, []

    def send_while_a_pause_comes(action, sensed):
        pausing.append(threading.Thread(target=loop.set_paused, args=(True,)))
        pausing[-1].start()           # the service thread, as the command goes out
        pausing[-1].join(0.2)         # it must wait for the command, not cut in after it
        return send(action, sensed)
    robot.send = send_while_a_pause_comes
    robot.calls.clear()
    loop.step()
    pausing[0].join(5.0)
    assert robot.kinds()[-1] == 'hold' and loop.paused
    robot.send = send
    assert loop.step() is Outcome.HELD and 'send' not in robot.kinds()[-1:]


def test_an_action_for_an_input_gone_stale_is_held_and_not_recorded():
    """The robot holds instead of acting (send says False): nothing is stored as acted."""
    robot = FakeRobot()
    loop = _loop(robot)
    loop.step()
    robot.send = lambda action, sensed: False
    assert loop.step() is Outcome.HELD
    assert loop.learner.env_steps == 0 and loop.held == 1


def test_a_pause_or_reset_hands_a_silent_dead_man_back_to_the_policy():
    """A device gone silent with its dead-man held held the robot until it sent again."""
    from sole_r1_ros.rl.teleop import SPACEMOUSE, Teleop
    clock = Clock()
    human = Teleop(SPACEMOUSE, 4, clock=clock)
    loop = _loop(FakeRobot(), human=human, clock=clock, episode_length=50)
    loop.step()
    human.update([0.5, 0, 0, 0, 0, 0], [1, 0])
    assert loop.step() is Outcome.ACTED and loop.learner.replay.stats()['intervened'] >= 1
    clock.now += 1.0                                 # unplugged
    assert loop.step() is Outcome.HELD
    loop.set_paused(True)
    loop.set_paused(False)
    assert human.current().mode == 'policy'
    assert [loop.step() for _ in range(2)] == [Outcome.NEW_EPISODE, Outcome.ACTED]


def test_an_evaluation_cancelled_while_its_episode_is_announced_still_ends_it():
    """The cancel's restart was erased: the episode ran on deterministic and unrecorded."""
    robot = FakeRobot()
    loop = _loop(robot, episode_length=30)
    loop.start_evaluation(90.0)
    announce = robot.announce

    def cancelled_meanwhile(episode_id, evaluation=False, since_ns=None):
        announce(episode_id, evaluation, since_ns)
        if episode_id and evaluation:
            loop.stop_evaluation()
    robot.announce = cancelled_meanwhile
    assert loop.step() is Outcome.NEW_EPISODE
    robot.announce = announce
    first = loop.episode_id
    outcomes = [loop.step() for _ in range(3)]
    assert Outcome.NEW_EPISODE in outcomes and loop.episode_id != first
    assert not loop.evaluating and loop.learner.env_steps >= 1   # training, recorded


def test_a_label_with_no_episode_running_is_refused_not_dropped():
    robot = FakeRobot()
    loop = _loop(robot)
    with pytest.raises(ValueError, match='no episode is running'):
        loop.label_episode('success')                # before the first episode
    loop.step()
    loop.label_episode('failure')
    with pytest.raises(ValueError, match='no episode is running'):
        loop.label_episode('success')                # the episode is ending already
    human = FakeHuman()
    human.labels = ['success']                       # a button before the first episode
    loop = _loop(FakeRobot(), human=human)
    assert loop.step() is Outcome.NEW_EPISODE        # ignored, with a warning


def test_a_joy_label_pressed_during_the_reset_or_twice_does_not_end_the_next_episode():
    robot = FakeRobot()
    human = FakeHuman()
    loop = _loop(robot, human=human)
    reset = robot.reset

    def slow_reset():   # the operator calls the ended episode a success while the arm homes
        human.labels.append('success')
        return reset()
    robot.reset = slow_reset
    loop.step()
    first = loop.episode_id
    robot.reset = reset
    assert [loop.step() for _ in range(2)] == [Outcome.ACTED] * 2
    assert loop.episode_id == first and not robot.summaries
    human.labels += ['failure', 'failure']   # a double press
    assert loop.step() is Outcome.NEW_EPISODE
    assert [s.label for s in robot.summaries] == ['failure']
    assert loop.step() is Outcome.ACTED and len(robot.summaries) == 1


def test_a_human_drives_flagged_steps_and_invalid_input_holds():
    robot = FakeRobot()
    human = FakeHuman('human', np.array([0.5, 0.0, 0.0, 1.0], np.float32))
    loop = _loop(robot, human=human)
    loop.step()
    assert loop.step() is Outcome.ACTED
    assert np.allclose(robot.calls[-1][1], [0.5, 0.0, 0.0, 1.0])
    human.mode, human.action = 'hold', None
    assert loop.step() is Outcome.HELD and robot.calls[-1] == ('hold',)
    human.mode = 'policy'
    loop.step()
    replay = loop.learner.replay
    assert replay.stats()['intervened'] == 1
    human.labels.append('success')
    assert loop.step() is Outcome.NEW_EPISODE
    summary = robot.summaries[-1]
    assert summary.label == 'success' and summary.intervened_steps == 1
    assert summary.intervention_rate == pytest.approx(0.5)


@pytest.mark.parametrize('mode', ['human', 'hold'])
def test_a_human_input_that_arrives_during_the_policys_inference_acts_on_that_step(mode):
    robot = FakeRobot()
    human = FakeHuman('policy')
    loop = _loop(robot, human=human)
    loop.step()
    act = loop.learner.agent.act

    def slow_act(obs, explore):   # the Joy message lands while the policy runs
        human.mode = mode
        human.action = np.array([0.5, 0.0, 0.0, 1.0], np.float32) if mode == 'human' else None
        return act(obs, explore=explore)
    loop.learner.agent.act = slow_act
    outcome = loop.step()
    if mode == 'human':
        assert outcome is Outcome.ACTED
        assert np.allclose(robot.calls[-1][1], [0.5, 0.0, 0.0, 1.0])
        assert loop.learner.replay.stats()['intervened'] == 1
    else:
        assert outcome is Outcome.HELD and robot.calls[-1] == ('hold',)


def test_a_human_success_label_sets_the_reward_only_when_asked():
    for enabled, expected in ((False, 0), (True, 1)):
        robot = FakeRobot()
        loop = _loop(robot, human_label_reward=enabled)
        loop.step()
        loop.step()
        loop.step()
        loop.label_episode('success')
        loop.step()   # closes the episode
        assert loop.learner.replay.stats()['labels_applied'] == 1 + expected   # + step 0
    with pytest.raises(ValueError, match='label'):
        loop.label_episode('great')


@pytest.mark.parametrize('ending', ['label', 'reset'])
def test_an_episode_a_label_or_reset_ends_records_its_last_frame(ending):
    """So the replay sees the end: the last steps' n-step windows can be sampled."""
    robot = FakeRobot()
    loop = _loop(robot, human_label_reward=True, episode_length=50)
    loop.step()
    for _ in range(4):
        assert loop.step() is Outcome.ACTED
    if ending == 'label':
        loop.label_episode('success')
    else:
        loop.request_reset()
    assert loop.step() is Outcome.NEW_EPISODE
    learner, replay = loop.learner, loop.learner.replay
    assert len(replay) == 5 and learner.episodes_done == 1 and learner.env_steps == 4
    if ending == 'reset':   # the model's answer for the last frame, as the final query gives
        learner.label(robot.summaries[-1].episode_id, robot.stamp_ns, 80.0)
    # every acting frame starts a window (the last ones shortened at the episode's end)
    assert int(replay._sampleable_mask().sum()) == 4
    if ending == 'label':   # the person's success is the last frame's progress
        assert replay._arrays['progress'][4] == 100.0


def test_an_invalid_answer_labels_nothing_and_is_counted():
    """The reward node carries the last progress forward when the model failed: not a label."""
    robot = FakeRobot()
    loop = _loop(robot, episode_length=50)
    loop.step()
    for _ in range(3):
        loop.step()
    loop.saw_progress(loop.episode_id, robot.stamp_ns, 40.0, valid=False)
    assert loop.learner.replay.stats()['labels_applied'] == 1   # step 0's only
    assert loop.status()['invalid_rewards'] == 1
    loop.saw_progress(loop.episode_id, robot.stamp_ns, 40.0)
    assert loop.learner.replay.stats()['labels_applied'] == 2


def test_a_persons_label_replaces_the_models_answer_for_the_last_frame():
    """A stale observation at the end: the label goes on the last acting frame, answered."""
    robot = FakeRobot()
    loop = _loop(robot, human_label_reward=True, episode_length=50)
    loop.step()
    for _ in range(3):
        loop.step()
    name, last_stamp = loop.episode_id, robot.stamp_ns
    assert loop.learner.label(name, last_stamp, 30.0) is LabelOutcome.APPLIED
    loop.label_episode('success')
    robot.stale = True
    loop.step()
    replay = loop.learner.replay
    assert len(replay) == 3   # nothing fresh to record the end with
    assert replay._arrays['progress'][2] == 100.0
    assert replay.stats()['labels_duplicate'] == 0


def test_evaluation_episodes_act_deterministically_and_are_not_stored():
    robot = FakeRobot()
    loop = _loop(robot)
    loop.step()
    loop.step()
    evaluation = loop.start_evaluation(threshold=50.0)
    assert loop.step() is Outcome.NEW_EPISODE      # the training episode ends first
    assert not robot.summaries[-1].evaluation
    stored = loop.learner.env_steps
    for _ in range(7):
        loop.step()                                # ends the evaluation episode
    assert loop.learner.env_steps == stored and robot.summaries[-1].evaluation
    announced = [c for c in robot.calls if c[0] == 'announce' and c[1]]
    assert [c[2] for c in announced] == [False, True, True]   # told at each start (it goes on)
    assert not evaluation.wait_episode(timeout=0.1)   # its last frame's answer is due
    loop.saw_progress(robot.summaries[-1].episode_id, robot.stamp_ns, 80.0)
    assert evaluation.wait_episode(timeout=1.0)
    assert evaluation.finished[0].success_progress
    assert loop.learn() is None and loop.learning_paused == 'evaluating'
    loop.stop_evaluation(object())                 # another evaluation's end leaves this one
    assert loop.evaluating
    loop.stop_evaluation(evaluation)
    assert not loop.evaluating and loop.step() is Outcome.NEW_EPISODE


def test_learning_pauses_without_rewards_and_resumes_when_they_come():
    robot, clock = FakeRobot(), Clock()
    learner = _learner()
    loop = _loop(robot, learner=learner, clock=clock, reward_timeout_s=5.0, episode_length=20)
    loop.step()
    stamps = []
    for _ in range(12):
        loop.step()
        stamps.append(robot.stamp_ns)
    clock.now = learner.last_label_s + 10.0
    assert loop.learn() is None and loop.learning_paused == 'no progress rewards lately'
    for stamp in stamps:
        loop.saw_progress(loop.episode_id, stamp, 50.0)
    clock.now = learner.last_label_s + 1.0
    loop.step()                                   # one step past readiness: an update is due
    loop.step()
    assert loop.learn() is not None and loop.learning_paused == ''


def test_a_failing_metrics_log_is_an_error_reported_not_the_end_of_learning():
    """A metrics log that raises is reported, and the learner thread goes on.

    TensorBoard's writer, dead on a full disk, raised in the metrics log, outside the thread's
    try: the learner thread ended, and learning and checkpoints with it.
    """
    robot, clock = FakeRobot(), Clock()
    learner = _learner()
    loop = _loop(robot, learner=learner, clock=clock, reward_timeout_s=3600.0,
                 episode_length=20)
    loop.step()
    for _ in range(12):
        loop.step()
        loop.saw_progress(loop.episode_id, robot.stamp_ns, 50.0)
    loop.step()
    errors, logged = [], []

    def on_metrics(step, metrics):
        logged.append(step)
        if len(logged) == 1:
            raise OSError(28, 'No space left on device')
    deadline = time.monotonic() + 60.0

    def running():   # the actor's steps, which updates wait for
        loop.step()
        loop.saw_progress(loop.episode_id, robot.stamp_ns, 50.0)
        return len(logged) < 2 and time.monotonic() < deadline
    loop.run_learner(running, on_metrics, errors.append)
    assert len(logged) == 2 and logged[1] >= logged[0] + 50
    assert [type(e) for e in errors] == [OSError]


def test_checkpoints_go_on_while_rewards_are_late_but_not_unchanged_or_after_a_stop(tmp_path):
    robot, clock = FakeRobot(), Clock()
    learner = _learner(tmp_path)
    loop = _loop(robot, learner=learner, clock=clock, reward_timeout_s=5.0, episode_length=50,
                 checkpoint_every_s=60.0)

    def checkpoints():
        return len([p for p in tmp_path.iterdir() if not p.name.startswith('.')])

    loop.step()
    for _ in range(5):
        loop.step()                                   # frames recorded, no reward answers
    clock.now = max(clock.now, learner.last_label_s) + 61.0
    assert loop.learn() is None and loop.learning_paused == 'no progress rewards lately'
    assert checkpoints() == 1                         # the frames since are kept (none before)
    clock.now += 61.0
    assert loop.learn() is None and checkpoints() == 1    # nothing new: nothing rewritten
    loop.step()
    clock.now += 61.0
    assert loop.learn(keep_going=lambda: False) is None and checkpoints() == 1   # stopping
    loop.set_paused(True)
    assert loop.learn() is None and checkpoints() == 2    # paused, the new frame still kept


def test_a_failed_checkpoint_is_in_the_status_until_one_is_written(tmp_path, monkeypatch):
    """Failed checkpoints were counted as a rejected input only: /diagnostics said 'ok'."""
    robot, clock = FakeRobot(), Clock()
    learner = _learner(tmp_path)
    loop = _loop(robot, learner=learner, clock=clock)
    loop.step()
    loop.step()
    assert loop.status()['checkpoint_error'] == '' and loop.status()['checkpoint_age_s'] == -1
    real = learner.save

    def full():
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(learner, 'save', full)
    with pytest.raises(OSError):
        loop.save_checkpoint()
    assert 'No space left on device' in loop.status()['checkpoint_error']
    monkeypatch.setattr(learner, 'save', real)
    loop.save_checkpoint()
    clock.now += 5.0
    assert loop.status()['checkpoint_error'] == '' and loop.status()['checkpoint_age_s'] == 5


def test_online_learner_matches_labels_by_stamp_rejects_nan_and_resumes(tmp_path):
    learner = _learner(tmp_path)
    learner.start_episode('ep')
    for step in range(5):
        obs = {'state': np.full(3, step, np.float32)}
        learner.record(obs, np.zeros(4, np.float32) if step < 4 else None,
                       stamp_ns=1_000_000_000 + step * 100_000_000)
    assert learner.label('ep', 1_200_000_000, 40.0) == LabelOutcome.APPLIED       # exact
    assert learner.label('ep', 1_310_000_000, 60.0) == LabelOutcome.APPLIED       # nearest
    assert learner.label('ep', 1_200_000_000, 99.0) == LabelOutcome.DUPLICATE     # once only
    assert learner.label('ep', 9_000_000_000, 10.0) is None                       # no frame
    assert learner.label('other', 1_200_000_000, 10.0) is None
    assert learner.label('ep', 1_400_000_000, -30.0) == LabelOutcome.APPLIED      # clipped
    assert learner.label('ep', 1_100_000_000, float('nan')) is None               # rejected
    assert learner.rejected_labels == 1
    assert learner.replay.stats()['labels_applied'] == 4                          # + step 0
    assert learner.save() is not None
    again = _learner(tmp_path)
    assert again.resume() and again.counters() == learner.counters()
    # an answer still on its way at the stop finds its frame (it was dropped as unmatched)
    assert again.label('ep', 1_105_000_000, 55.0) == LabelOutcome.APPLIED         # nearest
    assert again.label('ep', 1_200_000_000, 99.0) == LabelOutcome.DUPLICATE
    assert again.label('other', 1_200_000_000, 10.0) is None
    assert again.start_episode('next') == learner.episode_index + 1


def test_an_answer_that_comes_before_its_frame_is_recorded_is_held_for_it():
    """A fast reward model answers before the actor records the frame the camera queried.

    The actor is paced at its control rate; 9 in 10 answers of a 10 Hz run were dropped before.
    """
    learner = _learner()
    learner.start_episode('ep')
    obs, act = {'state': np.zeros(3, np.float32)}, np.zeros(4, np.float32)
    learner.record(obs, act, stamp_ns=1_000_000_000)
    assert learner.label('ep', 1_100_000_000, 40.0) == LabelOutcome.EARLY
    assert learner.label('ep', 1_200_000_000, 50.0) == LabelOutcome.EARLY    # a skipped frame
    assert learner.label('ep', 1_400_000_000, 70.0) == LabelOutcome.EARLY    # never recorded
    learner.record(obs, act, stamp_ns=1_101_000_000)                           # within 50 ms
    learner.record(obs, act, stamp_ns=1_300_000_000)                           # 1.2 s passed over
    progress = learner.replay._arrays['progress']
    assert progress[1] == 40.0 and learner.unmatched_labels == 1
    learner.record(obs, None, stamp_ns=1_340_000_000)                          # the episode ends
    assert learner.unmatched_labels == 2                                       # 1.4 s never came
    assert learner.label('ep', 1_500_000_000, 10.0) is None                    # after its end
    learner.start_episode('next')
    learner.record(obs, act, stamp_ns=2_000_000_000)
    assert learner.label('ep', 2_100_000_000, 10.0) is None    # not the running episode
    assert learner.label('next', 2_100_000_000, 30.0) == LabelOutcome.EARLY
    learner.start_episode('third')                             # its frame never came
    assert learner.unmatched_labels == 5


def test_resume_refuses_unreadable_checkpoints_and_rotation_keeps_them(tmp_path):
    learner = _learner(tmp_path)
    learner.start_episode('ep')
    learner.record({'state': np.zeros(3, np.float32)}, np.zeros(4, np.float32), 10**9)
    first = learner.save()
    (first / 'replay.npz').write_bytes(b'garbage')
    with pytest.raises(CheckpointError):
        _learner(tmp_path).resume()                 # never a silent fresh start
    assert not _learner(tmp_path / 'empty').resume()    # nothing there: fresh is right
    for _ in range(4):
        learner.save()                              # rotation keeps 3 ...
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert f'{first.name}.unreadable' in kept       # ... and sets the broken one aside
    assert len([k for k in kept if not k.endswith('.unreadable')]) == 3


def test_evaluation_waits_for_the_late_final_answer_then_scores():
    evaluation = Evaluation(threshold=80.0, label_wait_s=5.0)
    evaluation.episode_started('e0')
    evaluation.saw_progress('e0', 40.0)
    evaluation.saw_ground_truth(False)
    evaluation.episode_finished()
    assert not evaluation.wait_episode(timeout=0.2)     # its final answer is still coming
    evaluation.saw_progress('e0', 90.0)
    assert evaluation.wait_episode(timeout=1.0)
    (outcome,) = evaluation.finished
    assert outcome.final_progress == 90.0 and outcome.success_progress
    assert outcome.has_ground_truth and not outcome.success_ground_truth
    result = evaluation.result(lambda **kw: kw)
    assert result['episodes_done'] == 1 and result['success_rate_progress'] == 1.0


def test_evaluation_scores_the_answer_about_the_last_frame_not_the_last_to_arrive():
    """A slow model's answer about an earlier frame, in flight at the end, is not the verdict.

    The first answer after the end closed the episode: here 85 %, about frame 3, against the
    last frame's 96 % that came after it.
    """
    evaluation = Evaluation(threshold=90.0, label_wait_s=5.0)
    evaluation.episode_started('e0')
    for stamp, progress in ((1, 10.0), (2, 50.0)):
        evaluation.saw_progress('e0', progress, stamp)
    evaluation.episode_finished(last_ns=4)
    evaluation.saw_progress('e0', 85.0, 3)              # in flight when it ended
    assert not evaluation.wait_episode(timeout=0.2)     # not yet: frame 4's answer is due
    evaluation.saw_progress('e0', 96.0, 4)
    assert evaluation.wait_episode(timeout=1.0)
    assert evaluation.finished[0].final_progress == 96.0
    # answers may also come out of order: the latest frame's is the verdict
    evaluation.episode_started('e1')
    evaluation.episode_finished(last_ns=9)
    evaluation.saw_progress('e1', 20.0, 9)
    evaluation.saw_progress('e1', 95.0, 8)
    assert evaluation.wait_episode(timeout=1.0)
    assert evaluation.finished[1].final_progress == 20.0


def test_an_evaluation_episode_whose_last_answer_failed_is_not_scored():
    """The server down at the last frame: its carried-forward 92 % was the verdict, a success.

    ``episodes_unscored`` is for last frames the model never answered, which that one was.
    """
    evaluation = Evaluation(threshold=90.0, label_wait_s=5.0)
    evaluation.episode_started('e0')
    evaluation.saw_progress('e0', 92.0, 3)
    evaluation.episode_finished(last_ns=4)
    evaluation.saw_progress('e0', 92.0, 4, valid=False)   # carried forward by the reward node
    assert evaluation.wait_episode(timeout=1.0)          # closed at once, not after the wait
    outcome = evaluation.finished[0]
    assert not outcome.scored and not outcome.success_progress
    assert math.isnan(outcome.final_progress) and outcome.episode_return == 0.92


def test_an_evaluation_episode_a_label_ends_is_not_counted_and_its_answers_label_nothing():
    """A person's verdict cut it short; and evaluation answers are not unmatched labels."""
    robot = FakeRobot()
    loop = _loop(robot)
    evaluation = loop.start_evaluation(90.0, episodes=2)
    loop.step()                                          # an evaluation episode begins
    first = loop.episode_id
    loop.step()
    loop.saw_progress(first, robot.stamp_ns, 95.0)
    loop.label_episode('failure')
    assert loop.step() is Outcome.NEW_EPISODE            # another begins in its place
    assert evaluation.finished == [] and not evaluation.all_started
    assert loop.learner.unmatched_labels == 0
    assert robot.summaries[-1].episode_id == first and not robot.summaries[-1].counted


def test_evaluation_closes_an_unanswered_episode_after_the_wait_and_scores_it_nowhere():
    """An episode whose last frame was never answered is unscored, in no predicted rate.

    With the reward node dead, episodes were reported as answered 0 % (failures), and one
    whose last answer never came at a mid-episode answer.
    """
    evaluation = Evaluation(threshold=50.0, label_wait_s=0.1)
    evaluation.episode_started('e0')
    evaluation.episode_finished(last_ns=5)
    assert evaluation.wait_episode(timeout=1.0)
    evaluation.episode_started('e1')
    evaluation.saw_progress('e1', 100.0, 2)              # mid-episode; frame 5's never comes
    evaluation.episode_finished(last_ns=5)
    assert evaluation.wait_episode(timeout=1.0)
    evaluation.episode_started('e2')
    evaluation.episode_finished(last_ns=9)
    evaluation.saw_progress('e2', 20.0, 9)
    assert evaluation.wait_episode(timeout=1.0)
    first, second, third = evaluation.finished
    assert not first.scored and not second.scored and third.scored
    assert np.isnan(first.final_progress) and np.isnan(second.final_progress)
    assert not first.success_progress and not second.success_progress
    result = evaluation.result(lambda **kw: kw)
    assert result['episodes_done'] == 3 and result['episodes_unscored'] == 2
    assert result['success_rate_progress'] == 0.0 and result['mean_final_progress'] == 20.0
    assert np.isnan(result['success_rate_ground_truth'])


def test_a_cancelled_evaluation_does_not_count_the_episode_it_cut_short():
    """The evaluation ended first, so its running episode was taken as a finished one."""
    robot = FakeRobot()
    loop = _loop(robot)
    evaluation = loop.start_evaluation(90.0, episodes=3)
    loop.step()                                          # an evaluation episode begins
    first = loop.episode_id
    loop.step()
    loop.stop_evaluation(evaluation)                     # the action's cancel
    loop.step()
    assert robot.summaries[-1].episode_id == first and robot.summaries[-1].evaluation
    assert not robot.summaries[-1].counted


def test_resume_refuses_a_run_of_another_goal_or_action_layout(tmp_path):
    """A launch file resumes its run_dir without asking: another goal loaded silently."""
    meaning = {'goal': 'close the drawer', 'action_layout': 'ee_delta', 'views': ('external',)}
    learner = _learner(tmp_path / 'run', meaning=meaning)
    learner.start_episode('ep')
    learner.record({'state': np.zeros(3, np.float32)}, np.zeros(4, np.float32), 10**9)
    learner.save()
    with pytest.raises(CheckpointError, match="learnt with goal 'close the drawer', not "
                                              "'open the drawer'"):
        _learner(tmp_path / 'run', meaning={**meaning, 'goal': 'open the drawer'}).resume()
    with pytest.raises(CheckpointError, match='action_layout'):
        _learner(tmp_path / 'run', meaning={**meaning, 'action_layout': 'joint_position'}).resume()
    # the same run (a list for the tuple, edge spaces), or a goal not given, resumes
    assert _learner(tmp_path / 'run', meaning={**meaning, 'goal': ' close the drawer ',
                                               'views': ['external']}).resume()
    assert _learner(tmp_path / 'run', meaning={**meaning, 'goal': ''}).resume()
    old = _learner(tmp_path / 'old')                 # a checkpoint from before: nothing said
    old.save()
    assert _learner(tmp_path / 'old', meaning=meaning).resume()

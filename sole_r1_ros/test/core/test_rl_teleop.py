"""Human in the loop: dead-man takeover and hand-back, axis mapping, labels, bad Joy input."""
import numpy as np
import pytest

from sole_r1_ros.rl.teleop import (
    GAMEPAD, InterventionTracker, joy_problem, motion_from_axes, SPACEMOUSE, Teleop,
    TeleopConfig)

IDLE = [0.0] * 6


class FakeClock:
    def __init__(self) -> None:
        self.now = 10.0

    def __call__(self) -> float:
        return self.now


def spacemouse(action_dim: int = 4) -> tuple[Teleop, FakeClock]:
    clock = FakeClock()
    return Teleop(SPACEMOUSE, action_dim, clock=clock), clock


def test_no_joy_at_all_leaves_the_policy_in_control():
    teleop, _ = spacemouse()
    assert teleop.current().mode == 'policy' and teleop.pop_label() is None


def test_deadman_takes_over_at_once_and_release_hands_back():
    teleop, clock = spacemouse()
    assert teleop.update(IDLE, [0, 0]).mode == 'policy'
    decision = teleop.update([0.5, 0.0, -0.3, 0.0, 0.0, 0.0], [1, 0], gripper_now=0.9)
    assert decision.mode == 'human' and decision.events == ('took_over',)
    np.testing.assert_allclose(decision.action, [0.7, 0.0, -0.42, 0.9])   # scale 1.4
    clock.now += 0.1
    assert teleop.current().mode == 'human' and teleop.engaged
    released = teleop.update([0.5, 0.0, 0.0, 0.0, 0.0, 0.0], [0, 0])
    assert released.mode == 'policy' and released.events == ('handed_back',)
    assert teleop.current().action is None


def test_axis_mapping_applies_index_sign_scale_deadband_and_clip():
    config = TeleopConfig(motion_axes=(2, -1, 0, 5, 4, 3), axis_signs=(-1, 1, 1, 1, 1, -1),
                          axis_scales=(2.0, 1.0, 1.0, 1.0, 1.0, 0.5),
                          axis_deadbands=(0.1, 0.1, 0.3, 0.0, 0.0, 0.0))
    axes = [0.2, 0.9, 0.3, 0.4, 0.0, 0.0]
    np.testing.assert_allclose(motion_from_axes(axes, config), [-0.6, 0.0, 0.0])
    np.testing.assert_allclose(motion_from_axes([0.0, 0, 0.8, 0.4, 0, 0], config, dims=6),
                               [-1.0, 0.0, 0.0, 0.0, 0.0, -0.2])


def test_rotation_axes_act_only_with_a_seven_value_action():
    teleop, _ = spacemouse(action_dim=7)
    decision = teleop.update([0, 0, 0, 0.0, 0.0, 0.5], [1, 0])
    np.testing.assert_allclose(decision.action, [0, 0, 0, 0, 0, 0.7, 0])


@pytest.mark.parametrize('axes, buttons, reason', [
    ([0.0] * 5, [1, 0], 'expected 6 axes'),
    ([0.0, np.nan, 0, 0, 0, 0], [1, 0], 'not finite'),
    ([0.0, np.inf, 0, 0, 0, 0], [1, 0], 'not finite'),
    (IDLE, [1], 'expected at least 2 buttons'),
    (IDLE, [], 'expected at least 2 buttons'),
    (IDLE, ['x', 0], 'not numeric'),
    (None, [1, 0], 'flat lists'),
    ([[0.0] * 6], [1, 0], 'flat lists'),
])
def test_bad_joy_input_holds_with_a_reason_and_never_raises(axes, buttons, reason):
    teleop, clock = spacemouse()
    teleop.update(IDLE, [1, 0])                  # the human is driving
    decision = teleop.update(axes, buttons)
    assert decision.mode == 'hold' and reason in decision.reason and decision.action is None
    assert joy_problem(axes, buttons, SPACEMOUSE) is not None
    assert teleop.engaged                        # unknown dead-man state: not handed back


def test_a_spacemouse_whose_button_list_grows_is_still_read():
    """The spacenav driver adds a SpaceMouse's further buttons as they are first pressed.

    An exact count of 2 held the robot for the rest of the run after one press of a third.
    """
    teleop, clock = spacemouse()
    assert teleop.update(IDLE, [0, 0, 1]).mode == 'policy'
    decision = teleop.update([0.5, 0, 0, 0, 0, 0], [1, 0, 0] + [0] * 10)
    assert decision.mode == 'human'


def test_an_invalid_message_holds_a_policy_run_for_one_timeout_only():
    teleop, clock = spacemouse()
    assert teleop.update([np.nan] * 6, [0, 0]).mode == 'hold'
    clock.now += SPACEMOUSE.invalid_hold_s / 2
    assert teleop.current().mode == 'hold'
    clock.now += SPACEMOUSE.invalid_hold_s
    assert teleop.current().mode == 'policy'     # no device input at all: the policy acts
    teleop.update([np.nan] * 6, [0, 0])
    assert teleop.update(IDLE, [0, 0]).mode == 'policy'   # a valid message clears it


def test_joy_silence_while_the_deadman_is_held_holds_but_does_not_hand_back():
    teleop, clock = spacemouse()
    teleop.update([0.5, 0, 0, 0, 0, 0], [1, 0])
    clock.now += SPACEMOUSE.timeout_s + 0.01
    decision = teleop.current()
    assert decision.mode == 'hold' and 'no Joy message' in decision.reason
    assert teleop.update(IDLE, [1, 0]).mode == 'human'


def test_a_silent_device_holds_at_most_a_fifth_of_a_second_and_a_person_can_release_it():
    """An unplugged SpaceMouse: the last motion repeated 0.5 s (10 cm), then held for good."""
    assert SPACEMOUSE.timeout_s <= 0.2
    teleop, clock = spacemouse()
    teleop.update([0.5, 0, 0, 0, 0, 0], [1, 0])
    assert not teleop.release_if_silent()          # still heard: the person drives
    clock.now += SPACEMOUSE.timeout_s + 0.01
    assert teleop.current().mode == 'hold'
    assert teleop.release_if_silent() and teleop.current().mode == 'policy'
    assert teleop.update(IDLE, [1, 0]).mode == 'human'   # back: a press takes over again


def test_a_nan_on_an_axis_nothing_reads_is_no_reason_to_hold():
    config = TeleopConfig(motion_axes=(0, 1, 2, -1, -1, -1))
    teleop = Teleop(config, 4, clock=FakeClock())
    assert teleop.update([0.5, 0, 0, np.nan, 0, 0], [1, 0]).mode == 'human'
    assert teleop.update([0.5, 0, 0, np.nan, 0, 0], [0, 0]).mode == 'policy'   # released
    assert teleop.update([np.nan, 0, 0, 0, 0, 0], [1, 0]).mode == 'hold'       # one it reads


def test_a_button_held_through_a_new_mapping_is_not_a_press():
    """A label button held while teleop.* changed gave a label and ended the episode."""
    teleop, clock = spacemouse()
    buttons = [0] * 15
    buttons[6] = 1                                          # the gamepad's success button
    teleop.update(IDLE, buttons)
    teleop.reconfigure(GAMEPAD)
    assert teleop.update(IDLE, buttons).events == () and teleop.pop_label() is None
    teleop.update(IDLE, [0] * 15)
    assert teleop.update(IDLE, buttons).events and teleop.pop_label() == 'success'


def test_a_new_mapping_at_run_time_hands_back_and_reads_the_next_messages():
    teleop, clock = spacemouse()
    assert teleop.update([0.5, 0, 0, 0, 0, 0], [1, 0]).mode == 'human'
    teleop.reconfigure(GAMEPAD)                            # ros2 param set teleop.*
    assert teleop.current().mode == 'policy' and not teleop.engaged
    buttons = [0] * 15
    assert teleop.update([0.5, 0, 0, 0, 0, 0], [1] + buttons[1:]).mode == 'policy'
    buttons[9] = 1                                         # the gamepad's dead-man
    decision = teleop.update([0.0, 0.5, 0.0, 0.0, 0.0, 0.0], buttons)
    assert decision.mode == 'human' and decision.events[0] == 'took_over'
    np.testing.assert_allclose(decision.action[:3], [0.5, 0.0, 0.0])
    clock.now += GAMEPAD.timeout_s + 0.01                  # and its timeout
    assert teleop.current().mode == 'hold'


def test_gripper_buttons_toggle_and_hold_on_a_gamepad():
    clock = FakeClock()
    pad = Teleop(GAMEPAD, 4, clock=clock)
    buttons = [0] * 15
    deadman = list(buttons)
    deadman[9] = 1
    assert pad.update(IDLE, deadman, gripper_now=-1.0).action[-1] == -1.0
    close = list(deadman)
    close[0] = 1
    assert pad.update(IDLE, close).action[-1] == 1.0
    assert pad.update(IDLE, deadman).action[-1] == 1.0      # stays closed after release
    stick = [0.0, 0.5, 0.0, -0.2, 0.0, 0.0]                # left stick up, right stick down
    np.testing.assert_allclose(pad.update(stick, deadman).action, [0.5, 0.0, -0.2, 1.0])

    mouse, _ = spacemouse()
    assert mouse.update(IDLE, [1, 0], gripper_now=None).action[-1] == 0.0
    mouse.update(IDLE, [0, 0])
    assert mouse.update(IDLE, [1, 0], gripper_now=-1.0).action[-1] == -1.0
    assert mouse.update(IDLE, [1, 1]).action[-1] == 1.0     # a press toggles once
    assert mouse.update(IDLE, [1, 1]).action[-1] == 1.0
    mouse.update(IDLE, [1, 0])
    assert mouse.update(IDLE, [1, 1]).action[-1] == -1.0


def test_label_buttons_give_one_label_per_press():
    pad = Teleop(GAMEPAD, 4, clock=FakeClock())
    success = [0] * 15
    success[6] = 1
    assert pad.update(IDLE, success).events == ('label:success',)
    assert pad.update(IDLE, success).events == ()            # still held: no new label
    failure = [0] * 15
    failure[4] = 1
    pad.update(IDLE, failure)
    assert pad.pop_label() == 'success' and pad.pop_label() == 'failure'
    assert pad.pop_label() is None
    pad.update(IDLE, [0] * 15)
    pad.update(IDLE, success)
    assert pad.drop_labels() == 1 and pad.pop_label() is None   # pressed between episodes


@pytest.mark.parametrize('overrides', [
    {'deadman_button': 1},                       # also the toggle button
    {'success_button': 2, 'num_buttons': 2},     # only 2 buttons
    {'motion_axes': (0, 1, 2, 3, 4, 6)},         # only 6 axes
    {'axis_signs': (1, 1, 1, 1, 1, 0)},
    {'axis_deadbands': (0.1,) * 5},
    {'timeout_s': 5.0},                          # the last motion would repeat for 5 s
])
def test_bad_teleop_configs_are_rejected(overrides):
    with pytest.raises(ValueError):
        TeleopConfig(**overrides)


def test_action_dim_must_be_four_or_seven():
    with pytest.raises(ValueError):
        Teleop(SPACEMOUSE, action_dim=5)


def test_intervention_tracker_counts_steps_takeovers_and_rate():
    tracker = InterventionTracker()
    for intervened in (False, True, True, False, True):
        tracker.record(intervened)
    episode = tracker.end_episode()
    assert (episode.steps, episode.intervened_steps, episode.takeovers) == (5, 3, 2)
    assert episode.rate == pytest.approx(0.6)
    tracker.record(True)
    assert tracker.end_episode().takeovers == 1
    assert tracker.total.steps == 6 and tracker.total.intervened_steps == 4
    assert tracker.episode.rate == 0.0

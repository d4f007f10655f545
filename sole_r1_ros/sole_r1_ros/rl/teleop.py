"""A human in the loop: ``sensor_msgs/Joy``-shaped input becomes a decision and an action.

While the dead-man button is held the human acts: the mapped axes give an action in the
policy's own space ([-1, 1] end-effector deltas plus gripper), which then goes through the same
safety box as the policy's. Releasing the button hands control back. Label buttons end the
episode with a human success or failure label (``pop_label``). Input the mapping cannot read
(too few axes, a wrong button count, NaN/inf) never raises: it gives a hold with the reason.

Defaults fit a 3Dconnexion SpaceMouse through ``spacenav`` (topic ``spacenav/joy``: 6 axes
x, y, z, roll, pitch, yaw of the puck, about +-0.7 at full deflection, 2 buttons): hold the left
button to drive, the right button toggles the gripper; label through the learner's service.
``GAMEPAD`` is the documented alternative for an Xbox-style pad through ``joy``'s
``game_controller_node`` (axes 0 LEFTX, 1 LEFTY, 2 RIGHTX, 3 RIGHTY, 4/5 triggers; buttons
0 A, 1 B, 4 BACK, 6 START, 9 LEFTSHOULDER): hold LB to drive, left stick x/y, right stick up/down
for z and left/right for yaw, A closes, B opens, START = success, BACK = failure. Both map the
device's axes to the base frame as seen by an operator facing the robot's +x; flip
``axis_signs`` or swap ``motion_axes`` to match where you stand (``ros2 topic echo`` shows the
raw values).

``InterventionTracker`` counts intervened steps per episode for logs and the overlay. No ROS.
"""
from dataclasses import dataclass
import math
import threading
import time
from typing import Callable, NamedTuple, Sequence

import numpy as np

from sole_r1_ros.configuration import option, validate

LABELS = ('success', 'failure')
MOTION_NAMES = ('dx', 'dy', 'dz', 'droll', 'dpitch', 'dyaw')

_BUTTON = (-1, 63)
_BUTTON_ROLES = ('deadman_button', 'gripper_close_button', 'gripper_open_button',
                 'gripper_toggle_button', 'success_button', 'failure_button')


@dataclass(frozen=True)
class TeleopConfig:
    """Mapping from a Joy message to a human action; indices -1 mean 'not used'."""

    motion_axes: tuple[int, ...] = option(
        (0, 1, 2, 3, 4, 5), 'Joy axis index driving dx, dy, dz, droll, dpitch, dyaw (-1 = '
        'none); the last three only act with rotation actions', length=6, range=_BUTTON)
    axis_signs: tuple[int, ...] = option((1, 1, 1, 1, 1, 1), '+1 or -1 per motion dimension, '
                                         'to flip an axis', length=6, choices=(-1, 1))
    axis_scales: tuple[float, ...] = option(
        (1.4, 1.4, 1.4, 1.4, 1.4, 1.4), 'action per unit of axis value, per motion dimension; '
        'the result is clipped to [-1, 1] (spacenav gives about +-0.7)', length=6,
        range=(0.0, 100.0))
    axis_deadbands: tuple[float, ...] = option(
        (0.05, 0.05, 0.05, 0.05, 0.05, 0.05), 'an axis value this small or smaller counts as '
        '0, per motion dimension', length=6, range=(0.0, 1.0))
    deadman_button: int = option(0, 'held = the human acts, released = the policy acts again',
                                 range=(0, 63))
    gripper_close_button: int = option(-1, 'held = close the gripper (-1 = none)', range=_BUTTON)
    gripper_open_button: int = option(-1, 'held = open the gripper (-1 = none)', range=_BUTTON)
    gripper_toggle_button: int = option(1, 'each press flips the gripper between open and '
                                        'closed (-1 = none)', range=_BUTTON)
    success_button: int = option(-1, 'a press ends the episode labelled success (-1 = none)',
                                 range=_BUTTON)
    failure_button: int = option(-1, 'a press ends the episode labelled failure (-1 = none)',
                                 range=_BUTTON)
    num_axes: int = option(6, 'axes every Joy message must have (0 = any count that includes '
                           'the mapped axes)', range=(0, 64))
    num_buttons: int = option(0, 'buttons every Joy message must have (0 = any count that '
                              'includes the mapped buttons: spacenav grows the list as a '
                              "SpaceMouse's further buttons are first pressed, and an exact "
                              'count then held the robot for good)', range=(0, 64))
    timeout_s: float = option(0.2, 'while the dead-man is held, Joy silence this long holds '
                              "the robot [s] (joy's autorepeat_rate, 20 Hz by default, keeps "
                              'messages coming; spacenav sends far more often); at most 1 s, '
                              'as the last motion repeats until then: at 0.5 s a SpaceMouse '
                              'unplugged mid-motion moved the arm 10 cm more', range=(0.01, 1.0))
    invalid_hold_s: float = option(0.5, 'an invalid Joy message holds the robot this long [s]',
                                   range=(0.01, 60.0))

    def __post_init__(self) -> None:
        validate(self)
        used = [getattr(self, role) for role in _BUTTON_ROLES if getattr(self, role) >= 0]
        if len(used) != len(set(used)):
            raise ValueError(f'TeleopConfig: each button may have one role, got '
                             f'{ {role: getattr(self, role) for role in _BUTTON_ROLES} }')
        if self.num_buttons and max(used) >= self.num_buttons:
            raise ValueError(f'TeleopConfig: button {max(used)} does not exist with '
                             f'num_buttons={self.num_buttons}')
        if self.num_axes and max(self.motion_axes) >= self.num_axes:
            raise ValueError(f'TeleopConfig: axis {max(self.motion_axes)} does not exist with '
                             f'num_axes={self.num_axes}')

    @property
    def buttons_needed(self) -> int:
        """Smallest button count that includes every mapped button."""
        return 1 + max(getattr(self, role) for role in _BUTTON_ROLES)

    @property
    def axes_needed(self) -> int:
        """Smallest axis count that includes every mapped axis."""
        return 1 + max(self.motion_axes)


SPACEMOUSE = TeleopConfig()
'''3Dconnexion SpaceMouse through ``spacenav`` (the defaults).'''

GAMEPAD = TeleopConfig(
    motion_axes=(1, 0, 3, -1, -1, 2), axis_signs=(1, 1, 1, 1, 1, 1),
    axis_scales=(1.0, 1.0, 1.0, 1.0, 1.0, 1.0), axis_deadbands=(0.1, 0.1, 0.1, 0.1, 0.1, 0.1),
    deadman_button=9, gripper_close_button=0, gripper_open_button=1, gripper_toggle_button=-1,
    success_button=6, failure_button=4, num_axes=6, num_buttons=0)
'''Xbox-style gamepad through ``joy``'s ``game_controller_node`` (SDL2 order; the button count
differs between SDL versions, so it is not checked).'''


def joy_problem(axes: Sequence[float], buttons: Sequence[int],
                config: TeleopConfig) -> str | None:
    """Return why a Joy message cannot be read with ``config``, or None. Never raises."""
    try:
        a = np.asarray(axes, dtype=np.float64)
        b = np.asarray(buttons, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        return f'axes or buttons not numeric: {exc}'
    if a.ndim != 1 or b.ndim != 1:
        return f'axes and buttons must be flat lists, got shapes {a.shape} and {b.shape}'
    if config.num_axes and a.size != config.num_axes:
        return f'expected {config.num_axes} axes, got {a.size}'
    if a.size < config.axes_needed:
        return f'expected at least {config.axes_needed} axes, got {a.size}'
    if config.num_buttons and b.size != config.num_buttons:
        return f'expected {config.num_buttons} buttons, got {b.size}'
    if b.size < config.buttons_needed:
        return f'expected at least {config.buttons_needed} buttons, got {b.size}'
    # Only what is read must be finite: a NaN on an axis nothing maps held the robot, and
    # a dead-man held through it could not be released.
    axes_read = [i for i in config.motion_axes if i >= 0]
    if not np.all(np.isfinite(a[axes_read])):
        return f'axes not finite: {a.tolist()}'
    buttons_read = [getattr(config, role) for role in _BUTTON_ROLES if getattr(config, role) >= 0]
    if not np.all(np.isfinite(b[buttons_read])):
        return f'buttons not finite: {b.tolist()}'
    return None


def motion_from_axes(axes: Sequence[float], config: TeleopConfig, dims: int = 3) -> np.ndarray:
    """Map valid axes to the first ``dims`` (3 or 6) motion values of the action, in [-1, 1].

    value_i = clip(sign_i * scale_i * axes[index_i], -1, 1), or 0 for an unused axis or
    |axes[index_i]| <= deadband_i. Check the message with ``joy_problem`` first.
    """
    a = np.asarray(axes, dtype=np.float64).reshape(-1)
    out = np.zeros(dims)
    for i in range(dims):
        index = config.motion_axes[i]
        if index >= 0 and abs(a[index]) > config.axis_deadbands[i]:
            out[i] = config.axis_signs[i] * config.axis_scales[i] * a[index]
    return np.clip(out, -1.0, 1.0)


class TeleopDecision(NamedTuple):
    """Who commands the robot this control step."""

    mode: str
    ''''policy' (the policy acts), 'human' (``action`` acts) or 'hold' (send the hold).'''
    action: np.ndarray | None
    '''The human's action (policy action space, [-1, 1]) when ``mode`` is 'human'.'''
    reason: str = ''
    '''Why 'hold' (log it); empty otherwise.'''
    events: tuple[str, ...] = ()
    '''What this Joy message did (only from ``update``): 'took_over', 'handed_back',
    'label:success', 'label:failure'.'''


class Teleop:
    """Dead-man teleoperation state; ``update`` from the Joy callback, ``current`` per step.

    Thread-safe (one lock): the Joy callback and the control loop may run on different threads.
    """

    def __init__(self, config: TeleopConfig, action_dim: int = 4,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``action_dim``: 4 (dx, dy, dz, gripper) or 7 (with droll, dpitch, dyaw)."""
        if action_dim not in (4, 7):
            raise ValueError(f'action_dim must be 4 or 7, got {action_dim}')
        self._config, self._dims, self._clock = config, action_dim - 1, clock
        self._lock = threading.Lock()
        self._engaged = False
        self._action = np.zeros(action_dim)
        self._gripper = 0.0
        self._heard = -math.inf
        self._invalid_until, self._invalid_reason = -math.inf, ''
        self._previous: np.ndarray | None = np.zeros(0, dtype=bool)
        self._labels: list[str] = []

    def reconfigure(self, config: TeleopConfig) -> None:
        """Read later Joy messages with ``config`` (a run-time parameter change).

        The buttons may mean something else now, so a human in control is handed back; the
        next message is read under the new mapping (a dead-man held there takes over again).
        Buttons held through the change are not presses: a label button held then ended the
        episode.
        """
        with self._lock:
            self._config = config
            self._engaged = False
            self._action[:] = 0.0
            self._previous = None   # the next message is the baseline of the presses

    @property
    def heard(self) -> bool:
        """Whether any valid Joy message came.

        A wrong remap or a driver that never started leaves a person unable to take over,
        which nothing else shows.
        """
        with self._lock:
            return self._heard > -math.inf

    @property
    def engaged(self) -> bool:
        """Whether the last valid message held the dead-man button."""
        with self._lock:
            return self._engaged

    def update(self, axes: Sequence[float], buttons: Sequence[int], gripper_now: float = 0.0,
               now: float | None = None) -> TeleopDecision:
        """Read one Joy message; return the decision now in force, with what it changed.

        Args:
            axes: the Joy message's axes.
            buttons: the Joy message's buttons (0 / 1).
            gripper_now: the gripper as it is, in [-1, 1] (+1 closed); a takeover starts
                from it, so the gripper does not change when the human takes over, and the
                toggle button flips it.
            now: the message's arrival time (default: the clock) [s].
        """
        now = self._clock() if now is None else float(now)
        config = self._config
        problem = joy_problem(axes, buttons, config)
        with self._lock:
            if problem is not None:
                self._invalid_until = now + config.invalid_hold_s
                self._invalid_reason = f'invalid Joy message: {problem}'
                return self._current(now)
            self._invalid_until = -math.inf
            self._heard = now
            pressed = np.asarray(buttons, dtype=np.float64).reshape(-1) != 0
            if self._previous is None:
                self._previous = pressed
            events = self._events(pressed, gripper_now)
            self._previous = pressed
            if self._engaged:
                self._action[:self._dims] = motion_from_axes(axes, config, self._dims)
                self._action[-1] = self._gripper
            else:
                self._action[:] = 0.0
            return self._current(now)._replace(events=tuple(events))

    def current(self, now: float | None = None) -> TeleopDecision:
        """The decision for this control step (a 'human' action is a fresh copy)."""
        now = self._clock() if now is None else float(now)
        with self._lock:
            return self._current(now)

    def release_if_silent(self, now: float | None = None) -> bool:
        """Hand back to the policy a dead-man whose device went silent; True if it did.

        A device that stops sending while its dead-man is held holds the robot (the safe
        side), and only the device's next message could release it: a person's pause or
        reset does (``rl.loop``).
        """
        now = self._clock() if now is None else float(now)
        with self._lock:
            if not self._engaged or now - self._heard <= self._config.timeout_s:
                return False
            self._engaged, self._previous = False, None
            self._action[:] = 0.0
            return True

    def pop_label(self) -> str | None:
        """The oldest human label ('success' or 'failure') not yet taken, or None."""
        with self._lock:
            return self._labels.pop(0) if self._labels else None

    def drop_labels(self) -> int:
        """Forget the labels not taken yet (pressed between episodes); returns how many."""
        with self._lock:
            dropped, self._labels = len(self._labels), []
            return dropped

    def _current(self, now: float) -> TeleopDecision:
        if now < self._invalid_until:
            return TeleopDecision('hold', None, self._invalid_reason)
        if not self._engaged:
            return TeleopDecision('policy', None)
        if now - self._heard > self._config.timeout_s:
            return TeleopDecision('hold', None, f'no Joy message for {now - self._heard:.2f} s '
                                  'while the dead-man button was held')
        return TeleopDecision('human', self._action.copy())

    def _events(self, pressed: np.ndarray, gripper_now: float) -> list[str]:
        config, events = self._config, []

        def edge(index: int) -> bool:   # pressed now, not in the previous valid message
            if index < 0:
                return False
            was = index < self._previous.size and bool(self._previous[index])
            return bool(pressed[index]) and not was

        engaged = bool(pressed[config.deadman_button])
        if engaged and not self._engaged:
            events.append('took_over')
            self._gripper = _gripper_value(gripper_now)
        elif self._engaged and not engaged:
            events.append('handed_back')
        self._engaged = engaged
        if config.gripper_close_button >= 0 and pressed[config.gripper_close_button]:
            self._gripper = 1.0
        if config.gripper_open_button >= 0 and pressed[config.gripper_open_button]:
            self._gripper = -1.0
        if edge(config.gripper_toggle_button):
            self._gripper = -1.0 if self._gripper > 0 else 1.0
        for label, index in (('success', config.success_button),
                             ('failure', config.failure_button)):
            if edge(index):
                self._labels.append(label)
                events.append(f'label:{label}')
        return events


def _gripper_value(value: object) -> float:
    """A gripper value in [-1, 1]; 0 for anything that is not a finite number."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return 0.0
    return float(np.clip(value, -1.0, 1.0)) if math.isfinite(value) else 0.0


class InterventionStats(NamedTuple):
    """Intervention counts of one episode."""

    steps: int
    '''Control steps recorded.'''
    intervened_steps: int
    '''Steps whose command was the human's.'''
    takeovers: int
    '''Times the human took over (a policy step followed by a human step, or a first step).'''

    @property
    def rate(self) -> float:
        """Share of intervened steps in [0, 1] (0 for an empty episode)."""
        return self.intervened_steps / self.steps if self.steps else 0.0


class InterventionTracker:
    """Counts intervened steps per episode, and over the run, for logs and the overlay."""

    def __init__(self) -> None:
        self._steps = self._intervened = self._takeovers = 0
        self._last = False
        self.total = InterventionStats(0, 0, 0)
        '''Sums over the finished episodes.'''

    def record(self, intervened: bool) -> None:
        """Count one control step; ``intervened`` = the human's action was sent."""
        intervened = bool(intervened)
        self._steps += 1
        self._intervened += intervened
        self._takeovers += intervened and not self._last
        self._last = intervened

    @property
    def episode(self) -> InterventionStats:
        """Counts of the episode so far."""
        return InterventionStats(self._steps, self._intervened, self._takeovers)

    def end_episode(self) -> InterventionStats:
        """Return the episode's counts, add them to ``total`` and start a new episode."""
        stats = self.episode
        self.total = InterventionStats(*(a + b for a, b in zip(self.total, stats)))
        self._steps = self._intervened = self._takeovers = 0
        self._last = False
        return stats

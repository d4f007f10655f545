"""Scripted non-expert behaviours: Meta-World's expert plus perturbations, one kind per episode.

A progress model trained only on expert videos never sees a robot that pauses, undoes its work,
reaches for the wrong place or gives up, so it learns "time passes, so progress rises" and
rewards a policy that merely waits. Each behaviour here perturbs the expert in one named way;
what actually happened is measured by the simulator (``StepInfo.progress``), never assumed.
The controllers are pure numpy: they read the robot's observation, the expert's command and the
ground-truth progress so far, and return the next command.
"""
from dataclasses import dataclass
from typing import Callable

import numpy as np

BEHAVIOURS: tuple[str, ...] = (
    'expert', 'noisy', 'pause', 'reversal', 'stop_short', 'wrong_target', 'drop')
'''Behaviour labels, in the order ``behaviour_for_episode`` cycles through (expert twice).'''

_CYCLE = ('expert', 'noisy', 'stop_short', 'reversal', 'expert', 'pause', 'wrong_target',
          'drop', 'stop_short', 'reversal')
# Workspace box the wrong-target reaches aim into [m] (x right, y away from the base, z up).
_WORKSPACE_LOW = np.array([-0.3, 0.4, 0.08])
_WORKSPACE_HIGH = np.array([0.3, 0.85, 0.3])
_MIN_WRONG_DISTANCE_M = 0.15
# A command of 1 moves the hand target 1 cm per step (``sim.COMMAND_LAYOUT``).
_M_PER_UNIT = 0.01
_BACK_OFF_STEPS = 4
# Steps after stopping short in which ``PerturbedExpert.stopping`` holds (back-off and settling).
_STOPPING_STEPS = 8

ExpertFn = Callable[[], np.ndarray]


def behaviour_for_episode(index: int) -> str:
    """Return the behaviour of a task's ``index``-th episode (a fixed, balanced cycle).

    >>> [behaviour_for_episode(i) for i in range(3)]
    ['expert', 'noisy', 'stop_short']
    """
    if index < 0:
        raise ValueError(f'episode index must be >= 0, got {index}')
    return _CYCLE[index % len(_CYCLE)]


def approach_fraction(state: np.ndarray, start_state: np.ndarray) -> float:
    """How far the hand has closed in on the task's first object since reset, in [0, 1].

    Uses the 39-d Meta-World observation: hand xyz at [0:3], first object xyz at [4:7].
    """
    start = float(np.linalg.norm(start_state[4:7] - start_state[0:3]))
    if start < 1e-6:
        return 1.0
    now = float(np.linalg.norm(state[4:7] - state[0:3]))
    return float(np.clip(1.0 - now / start, 0.0, 1.0))


@dataclass(frozen=True)
class BehaviourPlan:
    """The randomised parameters of one perturbed episode (drawn by ``draw_plan``)."""

    kind: str
    '''One of ``BEHAVIOURS``.'''
    trigger_progress: float = 0.0
    '''Ground-truth progress [%] at which the perturbation starts (pause, reversal,
    stop_short, drop); 0 for the others.'''
    trigger_approach: float = 0.0
    '''stop_short only: if > 0, stop when the hand has closed this fraction of its distance
    to the object instead (a give-up before contact, possible in every task).'''
    duration_steps: int = 0
    '''Length of the perturbation [steps]: pause length, undo length, hold after stopping.'''
    noise_std: float = 0.0
    '''Std of the Gaussian added to the expert's xyz command (noisy).'''
    resume: bool = True
    '''reversal only: return to the expert after undoing (else hold still).'''
    wrong_targets: tuple[tuple[float, float, float], ...] = ()
    '''wrong_target only: hand positions [m] visited in turn.'''

    def __post_init__(self) -> None:
        if self.kind not in BEHAVIOURS:
            raise ValueError(f'kind must be one of {BEHAVIOURS}, got {self.kind!r}')
        if not 0.0 <= self.trigger_progress <= 100.0:
            raise ValueError(f'trigger_progress must be in [0, 100], got {self.trigger_progress}')
        if not 0.0 <= self.trigger_approach < 1.0:
            raise ValueError(f'trigger_approach must be in [0, 1), got {self.trigger_approach}')
        if self.duration_steps < 0 or self.noise_std < 0:
            raise ValueError('duration_steps and noise_std must be >= 0')


def draw_plan(kind: str, rng: np.random.Generator, object_position: np.ndarray) -> BehaviourPlan:
    """Draw the random parameters of one episode of behaviour ``kind``.

    Args:
        kind: the behaviour (``BEHAVIOURS``).
        rng: random generator of the episode.
        object_position: xyz [m] of the task's first object at reset; wrong targets keep away
            from it.
    """
    if kind == 'expert':
        return BehaviourPlan(kind)
    if kind == 'noisy':
        return BehaviourPlan(kind, noise_std=float(rng.uniform(0.3, 0.8)))
    if kind == 'pause':
        return BehaviourPlan(kind, trigger_progress=float(rng.uniform(5, 70)),
                             duration_steps=int(rng.integers(12, 30)))
    if kind == 'reversal':
        return BehaviourPlan(kind, trigger_progress=float(rng.uniform(25, 75)),
                             duration_steps=int(rng.integers(10, 30)),
                             resume=bool(rng.random() < 0.5))
    if kind == 'stop_short':
        before_contact = rng.random() < 0.35
        return BehaviourPlan(
            kind, trigger_progress=float(rng.uniform(15, 85)),
            trigger_approach=float(rng.uniform(0.3, 0.8)) if before_contact else 0.0,
            duration_steps=int(rng.integers(12, 25)))
    if kind == 'drop':
        return BehaviourPlan(kind, trigger_progress=float(rng.uniform(20, 70)),
                             duration_steps=int(rng.integers(15, 30)))
    if kind == 'wrong_target':
        targets = []
        while len(targets) < 2:
            point = rng.uniform(_WORKSPACE_LOW, _WORKSPACE_HIGH)
            if np.linalg.norm(point - object_position) >= _MIN_WRONG_DISTANCE_M:
                targets.append(tuple(float(v) for v in point))
        return BehaviourPlan(kind, duration_steps=int(rng.integers(50, 90)),
                             wrong_targets=tuple(targets))
    raise ValueError(f'kind must be one of {BEHAVIOURS}, got {kind!r}')


class PerturbedExpert:
    """Produce the commands of one episode: the expert, perturbed as its plan says.

    Call ``act`` once per step with the current observation state and the ground-truth progress
    of the last step; ``finished`` says when the episode's script is over (a perturbation that
    ends the episode, e.g. holding still after stopping short). Success-based ending is the
    caller's job.
    """

    def __init__(self, plan: BehaviourPlan, rng: np.random.Generator,
                 start_state: np.ndarray) -> None:
        self._plan = plan
        self._rng = rng
        self._start_state = np.asarray(start_state, dtype=np.float64).copy()
        self._history: list[np.ndarray] = []
        self._phase = 'expert'
        self._phase_steps = 0
        self._finished = False
        self._gripper = -1.0
        self._direction = np.zeros(3)
        self._target_index = 0

    @property
    def plan(self) -> BehaviourPlan:
        return self._plan

    @property
    def finished(self) -> bool:
        """The script has run out (the caller ends the episode)."""
        return self._finished

    @property
    def stopping(self) -> bool:
        """A stop_short episode has just stopped: the hand backs off and the scene settles."""
        return self._phase == 'stop_short' and self._phase_steps <= _STOPPING_STEPS

    @property
    def triggered(self) -> bool:
        """The perturbation has started (always False for expert and noisy)."""
        return self._phase != 'expert'

    def act(self, state: np.ndarray, progress: float, expert: ExpertFn) -> np.ndarray:
        """Return the next 4-value command in [-1, 1].

        Args:
            state: the robot's 39-d Meta-World observation now.
            progress: ground-truth progress [%] after the previous step (0 at reset).
            expert: returns the scripted expert's command for the current state.
        """
        kind = self._plan.kind
        if kind == 'wrong_target':
            return self._wrong_target(state)
        if self._phase == 'expert' and self._should_trigger(state, progress):
            self._phase, self._phase_steps = kind, 0
        if self._phase in ('expert', 'resumed'):
            return self._expert_step(expert)
        self._phase_steps += 1
        return getattr(self, f'_{kind}')()

    # ------------------------------------------------------------- phases
    def _should_trigger(self, state: np.ndarray, progress: float) -> bool:
        plan = self._plan
        if plan.kind in ('expert', 'noisy'):
            return False
        if plan.trigger_approach > 0.0:
            return approach_fraction(state, self._start_state) >= plan.trigger_approach
        return progress >= plan.trigger_progress

    def _expert_step(self, expert: ExpertFn) -> np.ndarray:
        action = np.array(expert(), dtype=np.float64)
        self._history.append(action.copy())
        self._gripper = float(action[3])
        norm = float(np.linalg.norm(action[:3]))
        if norm > 1e-3:
            self._direction = action[:3] / norm
        if self._plan.kind == 'noisy':
            action[:3] += self._rng.normal(0.0, self._plan.noise_std, 3)
        return np.clip(action, -1.0, 1.0)

    def _hold(self) -> np.ndarray:
        # Zero motion keeps the hand target still; the grip is kept so nothing falls.
        return np.array([0.0, 0.0, 0.0, self._gripper])

    def _back_off_then_hold(self) -> np.ndarray:
        # The hand lags its target, so a plain stop lets it coast into the object; a short move
        # against the last direction stops the push.
        if self._phase_steps <= _BACK_OFF_STEPS:
            return np.r_[-self._direction, self._gripper]
        if self._phase_steps >= _BACK_OFF_STEPS + self._plan.duration_steps:
            self._finished = True
        return self._hold()

    def _pause(self) -> np.ndarray:
        if self._phase_steps >= self._plan.duration_steps:
            self._phase = 'resumed'
        return self._hold()

    def _reversal(self) -> np.ndarray:
        plan = self._plan
        if self._phase_steps <= plan.duration_steps and self._history:
            # Replay the expert's recent commands backwards and negated: the hand retraces its
            # path, taking a grasped or hooked object back with it.
            past = self._history[-min(self._phase_steps, len(self._history))]
            return np.r_[-past[:3], past[3]]
        if plan.resume:
            self._phase = 'resumed'
            return self._hold()
        if self._phase_steps >= 2 * plan.duration_steps:
            self._finished = True
        return self._hold()

    def _stop_short(self) -> np.ndarray:
        return self._back_off_then_hold()

    def _drop(self) -> np.ndarray:
        # Let go and lift away; what the object does next is up to the physics.
        if self._phase_steps >= self._plan.duration_steps:
            self._finished = True
        lift = 1.0 if self._phase_steps <= 10 else 0.0
        return np.array([0.0, 0.0, lift, -1.0])

    def _wrong_target(self, state: np.ndarray) -> np.ndarray:
        self._phase_steps += 1
        targets = self._plan.wrong_targets
        per_target = max(1, self._plan.duration_steps // len(targets))
        index = min(self._phase_steps // per_target, len(targets) - 1)
        if self._phase_steps >= self._plan.duration_steps:
            self._finished = True
        error = np.array(targets[index]) - state[0:3]
        move = np.clip(error / _M_PER_UNIT, -1.0, 1.0)
        return np.r_[move, 1.0 if index % 2 else -1.0]

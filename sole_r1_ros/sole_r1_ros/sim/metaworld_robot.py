"""A simulated Sawyer arm on a Meta-World task: camera images and joint states out, commands in.

No ROS here: the simulator node wraps this class and runs physics and rendering on one thread.
"""
from dataclasses import dataclass
import logging
import os
from typing import Any, Sequence

import numpy as np

from sole_r1_ros.camera.pinhole import PinholeCamera
from sole_r1_ros.sim._deps import import_metaworld, import_mujoco
from sole_r1_ros.sim.config import clamp_command, SimConfig
from sole_r1_ros.sim.progress import TaskProgress
from sole_r1_ros.sim.rendering import camera_calibration, CameraRig
from sole_r1_ros.sim.variations import env_class, task_variations

_LOGGER = logging.getLogger(__name__)

JOINT_NAMES: tuple[str, ...] = (
    'right_j0', 'right_j1', 'right_j2', 'right_j3', 'right_j4', 'right_j5', 'right_j6',
    'r_close', 'l_close')
'''The Sawyer's 7 revolute arm joints (rad) and its 2 prismatic finger joints (m).'''

ROBOT_ROOT_BODY = 'base'
'''The Sawyer's root body: it, and every body below it, is the robot in a robot mask.'''

STATE_SIZE = 39
'''Length of Meta-World's goal-observable state (the privileged baseline's observation).'''
_UNLIMITED_ENV_STEPS = 2**62


def write_robot_model(path: str) -> str:
    """Write the Sawyer alone (arm, gripper, pedestal) as an MJCF file; return ``path``.

    The simulated robot's own description, as a real robot has its URDF: a self-filter
    (``camera/self_filter.py``) draws its mask from it and the joint states. It includes
    Meta-World's asset files where the package is installed.
    """
    assets = os.path.join(os.path.dirname(import_metaworld().__file__), 'assets')
    text = (f'<mujoco model="sawyer">\n'
            f'  <compiler meshdir="{assets}/sawyer_xyz"/>\n'
            f'  <include file="{assets}/objects/assets/xyz_base_dependencies.xml"/>\n'
            f'  <worldbody><include file="{assets}/objects/assets/xyz_base.xml"/></worldbody>\n'
            f'</mujoco>\n')
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, 'w', encoding='utf-8') as file:
        file.write(text)
    return path


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def _xyzw(wxyz: np.ndarray) -> np.ndarray:
    """Reorder a MuJoCo (w, x, y, z) quaternion into a new unit (x, y, z, w) array."""
    q = np.asarray(wxyz, dtype=np.float64)[[1, 2, 3, 0]]
    return q / np.linalg.norm(q)


@dataclass(frozen=True)
class Observation:
    """What the robot senses after a reset or a step; arrays are read-only copies."""

    external: np.ndarray | None
    '''External camera image, H×W×3 uint8 RGB, upright; None when rendering is off.'''
    wrist: np.ndarray | None
    '''Wrist camera image, H×W×3 uint8 RGB; None when rendering is off or no wrist camera.'''
    joint_names: tuple[str, ...]
    '''Names for ``joint_positions`` and ``joint_velocities`` (``JOINT_NAMES``).'''
    joint_positions: np.ndarray
    '''float64 (9,): arm joints in rad, finger joints in m.'''
    joint_velocities: np.ndarray
    '''float64 (9,): arm joints in rad/s, finger joints in m/s.'''
    ee_position: np.ndarray
    '''float64 (3,): hand position in the world frame, m (y away from the robot base, z up).'''
    ee_orientation: np.ndarray
    '''float64 (4,): hand orientation in the world frame, unit quaternion x, y, z, w (the order
    of geometry_msgs/Quaternion), from MuJoCo's ``hand`` body. Near (0, 0.71, 0, 0.71), a
    quarter turn about y: the mocap holds it fixed, contacts tilt it a little.'''
    gripper_opening: float
    '''Distance between the fingers over their 10 cm maximum, in [0, 1] (1 = open).'''
    state: np.ndarray
    '''float64 (39,): Meta-World's goal-observable observation (hand, gripper, object poses,
    the same 18 values one step earlier, goal position), for state policies and experts.'''
    time_s: float
    '''Simulated seconds since the last reset.'''


@dataclass(frozen=True)
class StepInfo:
    """Privileged outcome of a step, for evaluation and reward checks only, never for a policy."""

    progress: float
    '''Ground-truth task progress in [0, 100] from simulator state; 100 exactly on success.'''
    success: bool
    '''Meta-World's success test for this step.'''
    reward_env: float
    '''Meta-World's own dense shaped reward in [0, 10], for reference.'''
    truncated: bool
    '''The episode has reached ``max_episode_steps``. Stepping on is allowed (a live robot
    does not freeze) and keeps reporting True until ``reset``.'''


class MetaWorldRobot:
    """One Meta-World task with a Sawyer arm, two cameras and ground-truth progress.

    Each reset picks one of the task's 50 fixed object/goal variations (Meta-World's MT1
    protocol) from the robot's own seeded generator; the same reset seed always gives the same
    variation and a bit-identical initial state. Not thread-safe: use one thread, and render
    only from the thread that rendered first (``CameraRig``).
    """

    def __init__(self, config: SimConfig | None = None, robot_masks: bool = False) -> None:
        """Build the Meta-World env: 0.4 s, plus GL at the first rendering (2 cores, 2026-12-07).

        No GL context is created here; the first rendering ``reset`` or ``step`` creates it in
        its own thread.

        Args:
            robot_masks: the cameras render the robot's mask (255 where the arm, gripper and
                pedestal are, from the segmentation) instead of the picture: what a
                self-filter gives a real robot (``sole-r1 synth --robot-masks``).

        Raises:
            ImportError: MuJoCo or Meta-World is missing (the ``sim`` extra).
        """
        self._config = config or SimConfig()
        import_mujoco()
        import_metaworld()
        task = self._config.task
        self._variations = task_variations(task, self._config.seed)   # MT1's, faster
        self._env = env_class(task)()
        # Truncation is ours (robot steps); Meta-World would refuse to step past its horizon.
        self._env.max_path_length = _UNLIMITED_ENV_STEPS
        self._progress = TaskProgress(task)
        self._rng = np.random.default_rng(self._config.seed)
        self._qpos_index = np.array(
            [self._env.model.joint(n).qposadr[0] for n in JOINT_NAMES], dtype=np.intp)
        self._qvel_index = np.array(
            [self._env.model.joint(n).dofadr[0] for n in JOINT_NAMES], dtype=np.intp)
        joint = import_mujoco().mjtJoint
        model = self._env.model
        self._mechanism_dofs = np.array(
            [model.jnt_dofadr[j] for j in range(model.njnt)
             if model.jnt_type[j] in (joint.mjJNT_SLIDE, joint.mjJNT_HINGE)
             and model.jnt_dofadr[j] not in self._qvel_index], dtype=np.intp)
        cameras = [self._config.external_camera]
        if self._config.wrist_camera:
            cameras.append(self._config.wrist_camera)
        self._camera_names = tuple(cameras)
        self._cameras = CameraRig(
            self._env.model, cameras, self._config.image_width, self._config.image_height,
            mask_body=ROBOT_ROOT_BODY) if self._config.render else None
        self._masks_as_images = robot_masks
        self._expert: Any = None
        self._state: np.ndarray | None = None
        self._variation: int | None = None
        self._step_count = 0
        self._closed = False

    @property
    def config(self) -> SimConfig:
        """The configuration this robot was built with."""
        return self._config

    @property
    def goal(self) -> str:
        """The task in natural language, as a user would type it."""
        return self._config.goal

    @property
    def joint_names(self) -> tuple[str, ...]:
        """Joint order of every ``Observation``."""
        return JOINT_NAMES

    @property
    def step_count(self) -> int:
        """Robot steps since the last reset."""
        return self._step_count

    @property
    def variation(self) -> int | None:
        """Index (0 to 49) of the object/goal variation of this episode; None before reset."""
        return self._variation

    @property
    def control_period_s(self) -> float:
        """Simulated seconds per robot step."""
        return self._config.control_period_s

    @property
    def ee_target_position(self) -> np.ndarray:
        """The mocap target the hand follows, world frame [m] (a copy; it leads the hand).

        ``sim.commands.command_from_pose`` moves it exactly onto a reachable target.
        """
        return self._env.data.mocap_pos[0].copy()

    @property
    def model(self) -> Any:
        """The MuJoCo ``MjModel`` (for tests and tools; do not modify)."""
        return self._env.model

    @property
    def data(self) -> Any:
        """The MuJoCo ``MjData`` (for tests and tools; do not step it)."""
        return self._env.data

    def reset(self, seed: int | None = None, render: bool = True,
              variation: int | None = None) -> Observation:
        """Start an episode on a variation drawn from the robot's generator.

        Args:
            seed: re-seed the generator first (>= 0), making this and every later reset
                reproducible; ``reset(seed=config.seed)`` repeats the first unseeded reset.
            render: False skips the images of the first observation.
            variation: this variation (0 to 49) instead of a drawn one (the generator still
                draws, so later resets are the same either way): a dataset that keeps its
                validation episodes' variations out of training chooses them.

        Raises:
            ValueError: a negative or non-integer seed, a variation out of range.
            RuntimeError: the robot is closed, or another thread renders its cameras.
        """
        self._check_open()
        self._check_render_thread(render)
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
                raise ValueError(f'seed must be an int >= 0, got {seed!r}')
            self._rng = np.random.default_rng(int(seed))
        if variation is not None and (
                isinstance(variation, bool) or not isinstance(variation, (int, np.integer))
                or not 0 <= variation < len(self._variations)):
            raise ValueError(f'variation must be an int in [0, {len(self._variations)}), '
                             f'got {variation!r}')
        drawn = int(self._rng.integers(len(self._variations)))
        self._variation = drawn if variation is None else int(variation)
        env = self._env
        env.set_task(self._variations[self._variation])
        env.reset()
        self._state = self._fresh_state()
        _, info = env.evaluate_state(self._state, np.zeros(4))
        self._progress.start(env, self._state, info)
        self._step_count = 0
        _LOGGER.debug('reset %s variation %d', self._config.task, self._variation)
        return self._observe(render)

    def step(
        self, action: Sequence[float] | np.ndarray, render: bool = True
    ) -> tuple[Observation, StepInfo]:
        """Apply one command for ``action_repeat`` Meta-World steps.

        Args:
            action: 4 values in ``COMMAND_LAYOUT`` order; clipped to [-1, 1].
            render: False skips the images of this step (both None), e.g. to run control
                faster than the camera rate.

        Raises:
            ValueError: wrong length or a non-finite value (nothing reaches MuJoCo).
            RuntimeError: before ``reset``, after ``close``, or rendering from a thread other
                than the one that rendered first (checked before the physics step).
        """
        command = clamp_command(action)
        self._check_open()
        if self._state is None:
            raise RuntimeError('call reset() before step()')
        self._check_render_thread(render)
        for _ in range(self._config.action_repeat):
            state, reward, _, _, info = self._env.step(command.astype(np.float32))
        self._state = np.asarray(state, dtype=np.float64)
        self._step_count += 1
        step_info = StepInfo(
            progress=self._progress.update(self._env, self._state, info),
            success=bool(info['success']),
            reward_env=float(reward),
            truncated=self._step_count >= self._config.max_episode_steps)
        return self._observe(render=render), step_info

    def stop_objects(self) -> None:
        """Stop the scene's hinges and slides (drawer, door, window, faucet, handle, button).

        For synthesizing data only (``sole-r1 synth --brake``): a drawer shoved and let go
        slides on to its stop, so an episode whose hand stops short still ends with the drawer
        closed; stopped, it ends where the push ended. The robot's joints and free objects
        (pucks, balls, which may hang in the gripper) are left alone.
        """
        self._check_open()
        self._env.data.qvel[self._mechanism_dofs] = 0.0

    def expert_action(self) -> np.ndarray:
        """Return Meta-World's scripted expert command for the current state, clipped to [-1, 1].

        The expert reads privileged state (object and goal positions); use it for demos and
        checks, not as a baseline a learner could match from pixels.
        """
        self._check_open()
        if self._state is None:
            raise RuntimeError('call reset() before expert_action()')
        if self._expert is None:
            policies = import_metaworld().policies
            self._expert = policies.ENV_POLICY_MAP[self._config.task]()
        return clamp_command(self._expert.get_action(self._state))

    def camera_calibrations(self) -> tuple[tuple[PinholeCamera, str], ...]:
        """Each camera's calibration, in ``Observation`` order (external, wrist).

        What a hand-eye calibration gives a real robot: per camera its intrinsics, and its
        optical frame's pose in the base frame (the world here) with '' for a fixed camera,
        or in the link it is fixed to with that link's name (the wrist camera). For a
        self-filter (``camera/self_filter.py``) that draws the robot's mask from
        ``write_robot_model``'s file.
        """
        self._check_open()
        model, data = self._env.model, self._env.data
        import_mujoco().mj_forward(model, data)
        return tuple(camera_calibration(model, data, camera, self._config.image_width,
                                        self._config.image_height)
                     for camera in self._camera_names)

    def render_robot_masks(self) -> tuple[np.ndarray, ...]:
        """Each camera's mask of the robot now, in ``Observation`` order (external, wrist).

        H×W uint8, 255 where the arm, gripper or pedestal is: what a self-filter gives a real
        robot, rendered beside the pictures for a camera node that erases the robot
        (``camera/robot_eraser.py``). Call it right after the ``reset`` or ``step`` whose
        images it should match.

        Raises:
            RuntimeError: rendering is off, the robot is closed or not reset, or another
                thread renders its cameras.
        """
        return tuple(_frozen(np.ascontiguousarray(mask[..., 0]))
                     for mask in self._rendering('render_robot_masks').render_masks(
                         self._env.data))

    def render_depths(self) -> tuple[np.ndarray, ...]:
        """Each camera's depth image now, in ``Observation`` order (external, wrist).

        H×W float32 metres along the optical axis, aligned to the pictures: what an RGB-D
        camera gives a real robot (nothing privileged), for a self-filter that keeps what
        stands in front of the robot (``robot_mask_node.use_depth``). Call it right after the
        ``reset`` or ``step`` whose images it should match.

        Raises:
            RuntimeError: as ``render_robot_masks``.
        """
        return tuple(_frozen(depth) for depth in
                     self._rendering('render_depths').render_depths(self._env.data))

    def _rendering(self, caller: str) -> CameraRig:
        """The camera rig, for a render of the state now: open, rendering on, reset."""
        self._check_open()
        if self._cameras is None:
            raise RuntimeError(f'{caller} needs SimConfig.render')
        if self._state is None:
            raise RuntimeError(f'call reset() before {caller}()')
        return self._cameras

    def close(self) -> None:
        """Free the GL context and the env; call it from the thread that rendered. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._cameras is not None:
            self._cameras.close()
        self._env.close()

    def __enter__(self) -> 'MetaWorldRobot':
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError('MetaWorldRobot is closed')

    def _check_render_thread(self, render: bool) -> None:
        if render and self._cameras is not None:
            self._cameras.check_thread()

    def _fresh_state(self) -> np.ndarray:
        # Some tasks (window-close) move a joint after computing the reset observation, so
        # recompute it from the settled state, with no stale "previous frame" half.
        import_mujoco().mj_forward(self._env.model, self._env.data)
        state = np.asarray(self._env._get_obs(), dtype=np.float64)
        half = (STATE_SIZE - 3) // 2
        state[half:2 * half] = state[:half]
        return state

    def _observe(self, render: bool) -> Observation:
        data = self._env.data
        external = wrist = None
        if render and self._cameras is not None:
            images = (self._cameras.render_masks(data) if self._masks_as_images
                      else self._cameras.render(data))
            external = _frozen(images[0])
            wrist = _frozen(images[1]) if len(images) > 1 else None
        state = self._state
        return Observation(
            external=external,
            wrist=wrist,
            joint_names=JOINT_NAMES,
            joint_positions=_frozen(data.qpos[self._qpos_index].copy()),
            joint_velocities=_frozen(data.qvel[self._qvel_index].copy()),
            ee_position=_frozen(state[:3].copy()),
            ee_orientation=_frozen(_xyzw(data.body('hand').xquat)),
            gripper_opening=float(state[3]),
            state=_frozen(state.copy()),
            time_s=self._step_count * self._config.control_period_s)

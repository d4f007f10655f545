"""ROS-free online RL for the learner node and ``sole-r1 train``.

DrQ-v2 agent, replay buffer with pending progress rewards, checkpoints, safety limits, the
action adapters, controller command forms and teleoperation.
Modules: ``config`` (DrQConfig, ReplayConfig), ``replay``, ``shaping``, ``preprocess``,
``poses``, ``safety``, ``commands``, ``teleop`` (numpy only), and, needing torch, ``networks``,
``drq`` (DrQAgent), ``checkpoint`` and ``metrics``.
Importing this package does not import torch; ``DrQAgent`` and ``MetricsLogger`` load it on
first access.
"""
import importlib
from typing import Any

from sole_r1_ros.rl.checkpoint import (
    Checkpoint, CheckpointError, list_checkpoints, load_checkpoint, load_latest, restore,
    save_checkpoint)
from sole_r1_ros.rl.commands import (
    CommandConfig, ee_command, EeCommand, gripper_command, hold_joints, hold_normalized,
    hold_pose, hold_twist)
from sole_r1_ros.rl.config import DrQConfig, ReplayConfig
from sole_r1_ros.rl.poses import checked_pose, EePose, pose_problem
from sole_r1_ros.rl.preprocess import prepare_image, prepare_observation
from sole_r1_ros.rl.replay import Batch, LabelOutcome, ReplayBuffer
from sole_r1_ros.rl.safety import (
    apply_ee_delta, clamp_delta_to_workspace, clamp_to_limits, clamp_to_workspace,
    EeDeltaAdapter, JointTargetAdapter, rate_limit, safe_ee_delta, safe_ee_target, SafeDelta,
    SafetyBox, StaleWatchdog)
from sole_r1_ros.rl.shaping import progress_to_reward
from sole_r1_ros.rl.teleop import (
    GAMEPAD, InterventionStats, InterventionTracker, SPACEMOUSE, Teleop, TeleopConfig,
    TeleopDecision)

_LAZY = {'DrQAgent': 'sole_r1_ros.rl.drq', 'MetricsLogger': 'sole_r1_ros.rl.metrics'}

__all__ = ['apply_ee_delta', 'Batch', 'Checkpoint', 'CheckpointError', 'checked_pose',
           'clamp_delta_to_workspace', 'clamp_to_limits', 'clamp_to_workspace',
           'CommandConfig', 'DrQAgent', 'DrQConfig', 'ee_command', 'EeCommand',
           'EeDeltaAdapter', 'EePose', 'GAMEPAD', 'gripper_command', 'hold_joints',
           'hold_normalized', 'hold_pose', 'hold_twist', 'InterventionStats',
           'InterventionTracker', 'JointTargetAdapter', 'LabelOutcome', 'list_checkpoints',
           'load_checkpoint', 'load_latest', 'MetricsLogger', 'pose_problem', 'prepare_image',
           'prepare_observation', 'progress_to_reward', 'rate_limit', 'ReplayBuffer',
           'ReplayConfig', 'restore', 'safe_ee_delta', 'safe_ee_target', 'SafeDelta',
           'SafetyBox', 'save_checkpoint', 'SPACEMOUSE', 'StaleWatchdog', 'Teleop',
           'TeleopConfig', 'TeleopDecision']


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        try:
            module = importlib.import_module(_LAZY[name])
        except ImportError as exc:
            raise ImportError(f"{name} needs torch: pip install 'sole_r1_ros[model]'") from exc
        return getattr(module, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')

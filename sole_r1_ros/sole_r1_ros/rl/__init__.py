"""ROS-free online RL: the learner behind the learner node and the benchmarks.

The online loop (``loop``: act, record, learn, episodes, evaluation, a human's hand) around the
online learner (``online``: DrQ-v2 agent, replay with pending progress rewards, stamp-matched
labels, checkpoints), fed by ``sensing`` (the newest whole observation) and commanding through
``commands`` / ``safety`` (controller forms, the safety box) and ``teleop``.
Modules: ``config`` (DrQConfig, ReplayConfig), ``replay``, ``shaping``, ``preprocess``,
``poses``, ``safety``, ``commands``, ``teleop``, ``sensing``, ``episodes``, ``online``, ``loop``
(numpy only), and, needing torch, ``networks``, ``drq`` (DrQAgent), ``checkpoint`` and
``metrics``.
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
from sole_r1_ros.rl.episodes import Evaluation
from sole_r1_ros.rl.loop import ControlLoop, EpisodeSummary, LoopConfig, Outcome
from sole_r1_ros.rl.online import OnlineLearner
from sole_r1_ros.rl.poses import checked_pose, EePose, pose_problem
from sole_r1_ros.rl.preprocess import prepare_image, prepare_observation
from sole_r1_ros.rl.replay import Batch, LabelOutcome, ReplayBuffer
from sole_r1_ros.rl.sensing import Sensed, SensingConfig, Sensors
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
           'CommandConfig', 'ControlLoop', 'DrQAgent', 'DrQConfig', 'ee_command', 'EeCommand',
           'EeDeltaAdapter', 'EePose', 'EpisodeSummary', 'Evaluation', 'GAMEPAD',
           'gripper_command', 'hold_joints', 'hold_normalized', 'hold_pose', 'hold_twist',
           'InterventionStats', 'InterventionTracker', 'JointTargetAdapter', 'LabelOutcome',
           'list_checkpoints', 'load_checkpoint', 'load_latest', 'LoopConfig', 'MetricsLogger',
           'OnlineLearner', 'Outcome', 'pose_problem', 'prepare_image', 'prepare_observation',
           'progress_to_reward', 'rate_limit', 'ReplayBuffer', 'ReplayConfig', 'restore',
           'safe_ee_delta', 'safe_ee_target', 'SafeDelta', 'SafetyBox', 'save_checkpoint',
           'Sensed', 'SensingConfig', 'Sensors', 'SPACEMOUSE', 'StaleWatchdog', 'Teleop',
           'TeleopConfig', 'TeleopDecision']


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        try:
            module = importlib.import_module(_LAZY[name])
        except ImportError as exc:
            raise ImportError(f"{name} needs torch: pip install 'sole_r1_ros[model]'") from exc
        return getattr(module, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')

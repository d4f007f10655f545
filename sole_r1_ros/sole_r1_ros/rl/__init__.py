"""ROS-free online RL for the learner node and ``sole-r1 train``.

DrQ-v2 agent, replay buffer with pending progress rewards, checkpoints, safety limits and the
action adapters.
Modules: ``config`` (DrQConfig, ReplayConfig), ``replay``, ``shaping``, ``preprocess``,
``safety`` (numpy only), and, needing torch, ``networks``, ``drq`` (DrQAgent), ``checkpoint``
and ``metrics``.
Importing this package does not import torch; ``DrQAgent`` and ``MetricsLogger`` load it on
first access.
"""
import importlib
from typing import Any

from sole_r1_ros.rl.checkpoint import (
    Checkpoint, CheckpointError, list_checkpoints, load_checkpoint, load_latest, restore,
    save_checkpoint)
from sole_r1_ros.rl.config import DrQConfig, ReplayConfig
from sole_r1_ros.rl.preprocess import prepare_image, prepare_observation
from sole_r1_ros.rl.replay import Batch, LabelOutcome, ReplayBuffer
from sole_r1_ros.rl.safety import (
    clamp_delta_to_workspace, clamp_to_limits, clamp_to_workspace, EeDeltaAdapter,
    JointTargetAdapter, rate_limit, StaleWatchdog)
from sole_r1_ros.rl.shaping import progress_to_reward

_LAZY = {'DrQAgent': 'sole_r1_ros.rl.drq', 'MetricsLogger': 'sole_r1_ros.rl.metrics'}

__all__ = ['Batch', 'Checkpoint', 'CheckpointError', 'clamp_delta_to_workspace',
           'clamp_to_limits', 'clamp_to_workspace', 'DrQAgent',
           'DrQConfig', 'EeDeltaAdapter', 'JointTargetAdapter', 'LabelOutcome', 'list_checkpoints',
           'load_checkpoint', 'load_latest', 'MetricsLogger', 'prepare_image',
           'prepare_observation', 'progress_to_reward', 'rate_limit', 'ReplayBuffer',
           'ReplayConfig', 'restore', 'save_checkpoint', 'StaleWatchdog']


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        try:
            module = importlib.import_module(_LAZY[name])
        except ImportError as exc:
            raise ImportError(f"{name} needs torch: pip install 'sole_r1_ros[model]'") from exc
        return getattr(module, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')

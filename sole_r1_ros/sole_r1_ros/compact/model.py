"""The compact progress network and its checkpoint file.

Same question as SOLE-R1, answered by a 0.4 M-parameter CNN instead of an 8 B VLM: for each
camera view, the first, previous and current frames, stacked as 9 channels, go through a
small strided CNN whose middle layer is
FiLM-modulated by the goal embedding; the two views' features, the goal and the previous
progress feed an MLP that outputs progress [%]. torch is imported here, so import this module
only where a model is built.
"""
from dataclasses import asdict, dataclass
import os
import zipfile
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from sole_r1_ros.compact.checkpoint_info import CHECKPOINT_FORMAT, CHECKPOINT_VERSION
from sole_r1_ros.compact.goals import (
    ACTION_DIM, action_features, EMBEDDING_DIM, ENCODER_NAME, GoalEncoder)
from sole_r1_ros.configuration import option, validate

# Fields added after version 1, with the value a version-1 checkpoint means.
_V1_DEFAULTS = {'difference_inputs': False, 'goal_keywords': False}


class CheckpointError(ValueError):
    """A compact checkpoint file is missing pieces, of another format or corrupt."""


@dataclass(frozen=True)
class CompactConfig:
    """Shape of the compact progress network (stored in its checkpoint)."""

    image_size: int = option(64, 'side of each camera tile the network sees [px]; a multiple '
                             'of 16', range=(16, 512))
    channels: tuple[int, ...] = option((16, 32, 64, 64), 'output channels of the 4 stride-2 '
                                       'conv layers (each halves the image)', range=(1, 1024),
                                       length=4)
    feature_dim: int = option(128, 'per-view feature size after the conv stack',
                              range=(1, 4096))
    goal_dim: int = option(EMBEDDING_DIM, 'size of the goal embedding (all-MiniLM-L6-v2: 384)',
                           range=(1, 4096))
    goal_features: int = option(64, 'size of the goal projection fed to the head',
                                range=(1, 4096))
    hidden_dim: int = option(256, "width of the head's hidden layer", range=(1, 4096))
    goal_keywords: bool = option(True, 'also feed one flag per group of direction words of '
                                 'the goal (goals.ACTION_WORDS: open/close, in/out, ...), which '
                                 'sentence embeddings barely tell apart')
    difference_inputs: bool = option(True, 'also feed the differences current - previous and '
                                     'current - first to the first layer: what changed, '
                                     'whatever the object looks like')

    @property
    def goal_input_dim(self) -> int:
        """Size of the goal vector the network takes (embedding, plus the action flags)."""
        return self.goal_dim + (ACTION_DIM if self.goal_keywords else 0)

    def __post_init__(self) -> None:
        validate(self)
        if self.image_size % 16:
            raise ValueError(f'CompactConfig.image_size must be a multiple of 16, got '
                             f'{self.image_size}')


class _ViewEncoder(nn.Module):
    """Strided CNN over one view's 3 stacked frames, FiLM-modulated by the goal at layer 3.

    The input has 9 channels, 15 with the differences.
    """

    def __init__(self, config: CompactConfig) -> None:
        super().__init__()
        c1, c2, c3, c4 = config.channels
        self.differences = config.difference_inputs
        self.conv1 = nn.Conv2d(15 if self.differences else 9, c1, 4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 4, stride=2, padding=1)
        self.conv3 = nn.Conv2d(c2, c3, 3, stride=2, padding=1)
        self.conv4 = nn.Conv2d(c3, c4, 3, stride=2, padding=1)
        self.film = nn.Linear(config.goal_features, 2 * c3)
        side = config.image_size // 16
        self.project = nn.Sequential(
            nn.Flatten(), nn.Linear(c4 * side * side, config.feature_dim),
            nn.LayerNorm(config.feature_dim), nn.ReLU())

    def forward(self, frames: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """frames: B x 3 x 3 x H x W float in [0, 1] (first, previous, current)."""
        x = frames.flatten(1, 2)
        if self.differences:
            # Linear in the frames, so conv1 could learn them, but given explicitly they are
            # what the network looks at first, and they carry over to unseen objects.
            current = frames[:, 2]
            x = torch.cat([x, current - frames[:, 1], current - frames[:, 0]], dim=1)
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        scale, shift = self.film(goal).chunk(2, dim=-1)
        x = self.conv3(x) * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
        x = torch.relu(self.conv4(torch.relu(x)))
        return self.project(x)


class CompactProgressNet(nn.Module):
    """Progress [%] from (views, goal embedding, previous progress, wrist flag)."""

    def __init__(self, config: CompactConfig | None = None) -> None:
        super().__init__()
        self.config = config or CompactConfig()
        cfg = self.config
        self.goal = nn.Sequential(nn.Linear(cfg.goal_input_dim, cfg.goal_features), nn.ReLU())
        self.external = _ViewEncoder(cfg)
        self.wrist = _ViewEncoder(cfg)
        self.head = nn.Sequential(
            nn.Linear(2 * cfg.feature_dim + cfg.goal_features + 2, cfg.hidden_dim), nn.ReLU(),
            nn.Linear(cfg.hidden_dim, 1))

    def forward(self, views: torch.Tensor, goal: torch.Tensor, previous: torch.Tensor,
                has_wrist: torch.Tensor) -> torch.Tensor:
        """Predict progress.

        Args:
            views: B x 2 x 3 x 3 x H x W uint8 (external/wrist x first/previous/current x
                RGB) or float in [0, 1].
            goal: B x goal_input_dim goal vectors (``goal_vectors``).
            previous: B previous progress [%].
            has_wrist: B floats, 1 when the wrist view is real, 0 when zero-filled.

        Returns:
            B progress values [%] (unclamped).
        """
        if views.dtype == torch.uint8:
            views = views.float() / 255.0
        g = self.goal(goal)
        external = self.external(views[:, 0], g)
        wrist = self.wrist(views[:, 1], g) * has_wrist[:, None]
        features = torch.cat(
            [external, wrist, g, previous[:, None] / 100.0, has_wrist[:, None]], dim=-1)
        return self.head(features).squeeze(-1) * 100.0


def goal_vectors(config: CompactConfig, encoder: GoalEncoder, texts: Sequence[str]
                 ) -> np.ndarray:
    """Return (N, goal_input_dim) float32 goal vectors.

    The goal embeddings, plus the action flags if the network takes them.
    """
    vectors = encoder.encode(texts)
    if config.goal_keywords:
        vectors = np.concatenate([vectors, action_features(texts)], axis=1)
    return vectors


def save_checkpoint(path: str, model: CompactProgressNet, goal_cache: Mapping[str, Any],
                    info: Mapping[str, Any]) -> None:
    """Write weights (float16, to keep the shipped file small), config, goal cache and info."""
    state = {k: v.detach().to(torch.float16) if v.is_floating_point() else v
             for k, v in model.state_dict().items()}
    config = asdict(model.config)
    config['channels'] = list(config['channels'])
    payload = {'format': CHECKPOINT_FORMAT, 'version': CHECKPOINT_VERSION, 'config': config,
               'state_dict': state, 'encoder': ENCODER_NAME,
               'goal_cache': {k: [float(x) for x in v] for k, v in goal_cache.items()},
               'info': dict(info)}
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    temp = path + '.tmp'
    try:
        torch.save(payload, temp)
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)


def load_checkpoint(path: str) -> tuple[CompactProgressNet, dict[str, Any], dict[str, Any]]:
    """Return (model in eval mode, goal cache, info) from a checkpoint file.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: not a compact checkpoint, a newer version, or corrupt.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'no compact progress checkpoint at {path}')
    if not zipfile.is_zipfile(path):   # torch's own error for these is empty or misleading
        raise CheckpointError(f'{path} is not a compact checkpoint: not the zip archive '
                              f'torch.save writes ({os.path.getsize(path)} bytes)')
    try:
        payload = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # pickle, zip and tensor errors all mean an unusable file
        raise CheckpointError(f'cannot read compact checkpoint {path}: '
                              f'{str(exc) or type(exc).__name__}') from exc
    if not isinstance(payload, dict) or payload.get('format') != CHECKPOINT_FORMAT:
        raise CheckpointError(f'{path} is not a {CHECKPOINT_FORMAT} checkpoint')
    if payload.get('version', 0) > CHECKPOINT_VERSION:
        raise CheckpointError(f'{path} has version {payload.get("version")}; this code reads '
                              f'<= {CHECKPOINT_VERSION}')
    try:
        config = {**_V1_DEFAULTS, **payload['config']}
        config['channels'] = tuple(config['channels'])
        model = CompactProgressNet(CompactConfig(**config))
        model.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in payload['state_dict'].items()})
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f'{path}: malformed compact checkpoint: {exc}') from exc
    return model.eval(), dict(payload.get('goal_cache', {})), dict(payload.get('info', {}))

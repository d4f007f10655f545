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
from typing import Any, Mapping

import torch
from torch import nn

from sole_r1_ros.compact.goals import EMBEDDING_DIM, ENCODER_NAME

CHECKPOINT_FORMAT = 'sole_r1_compact'
CHECKPOINT_VERSION = 1


class CheckpointError(RuntimeError):
    """A compact checkpoint file is missing pieces, of another format or corrupt."""


@dataclass(frozen=True)
class CompactConfig:
    """Shape of the compact progress network (stored in its checkpoint)."""

    image_size: int = 64
    '''Side of each camera tile the network sees [px].'''
    channels: tuple[int, ...] = (16, 32, 64, 64)
    '''Output channels of the 4 stride-2 conv layers (each halves the image).'''
    feature_dim: int = 128
    '''Per-view feature size after the conv stack.'''
    goal_dim: int = EMBEDDING_DIM
    '''Size of the goal embedding (all-MiniLM-L6-v2: 384).'''
    goal_features: int = 64
    '''Size of the goal projection fed to the head.'''
    hidden_dim: int = 256
    '''Width of the head's hidden layer.'''

    def __post_init__(self) -> None:
        if len(self.channels) != 4 or any(c < 1 for c in self.channels):
            raise ValueError(f'channels must be 4 positive ints, got {self.channels}')
        if self.image_size < 16 or self.image_size % 16:
            raise ValueError(f'image_size must be a multiple of 16, >= 16, got '
                             f'{self.image_size}')
        for name in ('feature_dim', 'goal_dim', 'goal_features', 'hidden_dim'):
            if getattr(self, name) < 1:
                raise ValueError(f'{name} must be >= 1, got {getattr(self, name)}')


class _ViewEncoder(nn.Module):
    """Strided CNN over one view's 3 stacked frames (9 channels), FiLM at layer 3."""

    def __init__(self, config: CompactConfig) -> None:
        super().__init__()
        c1, c2, c3, c4 = config.channels
        self.conv1 = nn.Conv2d(9, c1, 4, stride=2, padding=1)
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
        # Frame differences would be redundant inputs: conv1 is linear in the stacked frames.
        x = torch.relu(self.conv1(frames.flatten(1, 2)))
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
        self.goal = nn.Sequential(nn.Linear(cfg.goal_dim, cfg.goal_features), nn.ReLU())
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
            goal: B x goal_dim goal embeddings.
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
    torch.save(payload, temp)
    os.replace(temp, path)


def load_checkpoint(path: str) -> tuple[CompactProgressNet, dict[str, Any], dict[str, Any]]:
    """Return (model in eval mode, goal cache, info) from a checkpoint file.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: not a compact checkpoint, a newer version, or corrupt.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'no compact progress checkpoint at {path}')
    try:
        payload = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # pickle, zip and tensor errors all mean an unusable file
        raise CheckpointError(f'cannot read compact checkpoint {path}: {exc}') from exc
    if not isinstance(payload, dict) or payload.get('format') != CHECKPOINT_FORMAT:
        raise CheckpointError(f'{path} is not a {CHECKPOINT_FORMAT} checkpoint')
    if payload.get('version', 0) > CHECKPOINT_VERSION:
        raise CheckpointError(f'{path} has version {payload.get("version")}; this code reads '
                              f'<= {CHECKPOINT_VERSION}')
    try:
        config = dict(payload['config'])
        config['channels'] = tuple(config['channels'])
        model = CompactProgressNet(CompactConfig(**config))
        model.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in payload['state_dict'].items()})
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f'{path}: malformed compact checkpoint: {exc}') from exc
    return model.eval(), dict(payload.get('goal_cache', {})), dict(payload.get('info', {}))

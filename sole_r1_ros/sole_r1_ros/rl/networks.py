"""DrQ-v2 networks (Yarats et al. 2021): random-shift augmentation, conv encoder, actor, critics.

Follows the reference implementation (facebookresearch/drqv2 ``drqv2.py``) with two changes for
CPU: the conv strides are configurable, and the shift is an integer crop by index clamping (the
same result as replicate padding + ``grid_sample`` at integer offsets, on uint8, without a grid).
"""
import torch
from torch import nn


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each N x C x H x W image by an integer in [-pad, pad] per axis (DrQ-v2 Sec. 3.1).

    Out-of-frame pixels repeat the border, as with DrQ-v2's replicate padding. Works on any dtype.
    """
    n, _, h, w = images.shape
    if pad == 0:
        return images
    # replicate padding by repeating the edge rows and columns (fast, also for uint8)
    x = torch.cat([images[:, :, :1].expand(-1, -1, pad, -1), images,
                   images[:, :, -1:].expand(-1, -1, pad, -1)], 2)
    padded = torch.cat([x[..., :1].expand(-1, -1, -1, pad), x,
                        x[..., -1:].expand(-1, -1, -1, pad)], 3)
    shift = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator).tolist()
    return torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(shift)])


def _init_weights(module: nn.Module) -> None:
    """Orthogonal init with zero bias (DrQ-v2 ``utils.weight_init``)."""
    if isinstance(module, nn.Linear):
        nn.init.orthogonal_(module.weight.data)
        module.bias.data.fill_(0.0)
    elif isinstance(module, nn.Conv2d):
        nn.init.orthogonal_(module.weight.data, nn.init.calculate_gain('relu'))
        module.bias.data.fill_(0.0)


class Encoder(nn.Module):
    """Shared conv stack applied to each of V views; features are concatenated per sample."""

    def __init__(self, num_views: int, channels: int, image_size: int,
                 strides: tuple[int, ...] = (2, 1, 1, 1)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels, side = 3, image_size
        for stride in strides:
            layers += [nn.Conv2d(in_channels, channels, 3, stride=stride),
                       nn.ReLU(inplace=True)]
            in_channels, side = channels, (side - 3) // stride + 1
        if side < 1:
            raise ValueError(f'image_size {image_size} is too small for strides {strides}')
        self.convnet = nn.Sequential(*layers)
        self.repr_dim = num_views * channels * side * side
        self.apply(_init_weights)
        # channels-last convolutions are about 1.8x faster forward+backward on x86 CPUs
        self.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """B x V x 3 x H x W (uint8 or float in [0, 255]) -> B x repr_dim."""
        b = images.shape[0]
        x = images.flatten(0, 1).float().mul_(1.0 / 255.0).sub_(0.5)
        x = x.contiguous(memory_format=torch.channels_last)
        return self.convnet(x).reshape(b, -1)


def _mlp(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True),
                         nn.Linear(hidden_dim, hidden_dim), nn.ReLU(inplace=True),
                         nn.Linear(hidden_dim, out_dim))


def _trunk(repr_dim: int, feature_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(repr_dim, feature_dim), nn.LayerNorm(feature_dim), nn.Tanh())


class Actor(nn.Module):
    """Deterministic policy mu(h) = tanh(MLP([trunk(h), s]))."""

    def __init__(self, repr_dim: int, extra_dim: int, feature_dim: int, hidden_dim: int,
                 action_dim: int) -> None:
        """``extra_dim``: proprioception appended after the trunk (0 for the state variant)."""
        super().__init__()
        self.trunk = _trunk(repr_dim, feature_dim)
        self.policy = _mlp(feature_dim + extra_dim, hidden_dim, action_dim)
        self.apply(_init_weights)

    def forward(self, h: torch.Tensor, extra: torch.Tensor | None) -> torch.Tensor:
        z = self.trunk(h)
        if extra is not None:
            z = torch.cat([z, extra], dim=-1)
        return torch.tanh(self.policy(z))


class Critic(nn.Module):
    """Twin Q-functions Q_1, Q_2 on a shared trunk (clipped double Q, Fujimoto et al. 2018)."""

    def __init__(self, repr_dim: int, extra_dim: int, feature_dim: int, hidden_dim: int,
                 action_dim: int) -> None:
        super().__init__()
        self.trunk = _trunk(repr_dim, feature_dim)
        in_dim = feature_dim + extra_dim + action_dim
        self.q1 = _mlp(in_dim, hidden_dim, 1)
        self.q2 = _mlp(in_dim, hidden_dim, 1)
        self.apply(_init_weights)

    def forward(self, h: torch.Tensor, extra: torch.Tensor | None,
                action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [self.trunk(h)] + ([] if extra is None else [extra]) + [action]
        z = torch.cat(parts, dim=-1)
        return self.q1(z).squeeze(-1), self.q2(z).squeeze(-1)

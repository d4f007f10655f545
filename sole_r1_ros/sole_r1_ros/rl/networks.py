"""DrQ-v2 networks (Yarats et al. 2021): random-shift augmentation, conv encoder, actor, critics.

Follows the reference implementation (facebookresearch/drqv2 ``drqv2.py``) with three changes
for CPU: the conv strides are configurable, the shift is an integer crop of a replicate-padded
uint8 batch (the same result as ``grid_sample`` at integer offsets, about 18x cheaper here), and
the representation (conv stack and trunk Linear) may run in bfloat16 autocast, the convolutions
in channels-last memory format (``bench/bench_drq.py`` measures each).
"""
import functools
from pathlib import Path

import torch
from torch import nn

from sole_r1_ros.rl.config import PRECISIONS

_BF16_FLAGS = frozenset({'avx512_bf16', 'amx_bf16'})


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Return True when this x86 CPU computes bfloat16 natively (``avx512_bf16`` or ``amx_bf16``).

    Reads ``/proc/cpuinfo``; elsewhere (no procfs) asks torch's own CPU probe. Without native
    bf16, autocast emulates it and runs slower than float32.
    """
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        return bf16_in_cpuinfo(Path('/proc/cpuinfo').read_text())
    except OSError:
        probes = ('_is_avx512_bf16_supported', '_is_amx_tile_supported')
        return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def bf16_in_cpuinfo(cpuinfo: str) -> bool:
    """Whether the ``flags`` lines of a ``/proc/cpuinfo`` text name a native bf16 unit.

    >>> bf16_in_cpuinfo('flags : fpu avx512f avx512_bf16 vaes')
    True
    >>> bf16_in_cpuinfo('flags : fpu avx2 avx512f')
    False
    """
    flags = {flag for line in cpuinfo.splitlines() if line.startswith('flags')
             for flag in line.split(':', 1)[-1].split()}
    return bool(flags & _BF16_FLAGS)


def use_bf16(precision: str) -> bool:
    """Resolve ``DrQConfig.precision``: 'auto' means bfloat16 exactly where ``cpu_has_bf16``."""
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got {precision!r}')
    if precision == 'auto':
        return cpu_has_bf16()
    return precision == 'bfloat16'


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
    """Shared conv stack applied to each of V views; features are concatenated per sample.

    ``bf16`` runs the convolutions (forward and backward) under bfloat16 CPU autocast; weights,
    their gradients and the returned features stay float32. ``channels_last`` keeps weights and
    activations in NHWC, the layout x86 oneDNN convolutions run fastest.
    """

    def __init__(self, num_views: int, channels: int, image_size: int,
                 strides: tuple[int, ...] = (2, 1, 1, 1), bf16: bool = False,
                 channels_last: bool = True) -> None:
        super().__init__()
        self.bf16, self.channels_last = bf16, channels_last
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
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """B x V x 3 x H x W (uint8 or float in [0, 255]) -> B x repr_dim float32."""
        b = images.shape[0]
        x = images.flatten(0, 1)
        if self.channels_last:   # transpose while still uint8: a quarter of the bytes
            x = x.contiguous(memory_format=torch.channels_last)
        x = x.to(torch.float32, copy=True).mul_(1.0 / 255.0).sub_(0.5)   # never the caller's
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=self.bf16):
            h = self.convnet(x)
        return h.float().reshape(b, -1)


def set_bf16(module: nn.Module, enabled: bool) -> nn.Module:
    """Switch the bfloat16 autocast of every ``Encoder`` and ``Trunk`` in ``module``; return it."""
    for child in module.modules():
        if isinstance(child, (Encoder, Trunk)):
            child.bf16 = enabled
    return module


def _mlp(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True),
                         nn.Linear(hidden_dim, hidden_dim), nn.ReLU(inplace=True),
                         nn.Linear(hidden_dim, out_dim))


class Trunk(nn.Sequential):
    """z = tanh(LayerNorm(W h + b)), compressing the representation (DrQ-v2's ``trunk``).

    ``bf16`` runs the Linear, by far the widest layer of the heads (repr_dim x feature_dim),
    under bfloat16 autocast; LayerNorm, tanh and the returned z are float32.
    """

    def __init__(self, repr_dim: int, feature_dim: int, bf16: bool = False) -> None:
        super().__init__(nn.Linear(repr_dim, feature_dim), nn.LayerNorm(feature_dim), nn.Tanh())
        self.bf16 = bf16

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        linear, norm, tanh = self
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=self.bf16):
            z = linear(h)
        return tanh(norm(z.float()))


class Actor(nn.Module):
    """Deterministic policy mu(h) = tanh(MLP([trunk(h), s]))."""

    def __init__(self, repr_dim: int, extra_dim: int, feature_dim: int, hidden_dim: int,
                 action_dim: int, bf16: bool = False) -> None:
        """Build the trunk and the policy head.

        ``extra_dim`` is the proprioception appended after the trunk (0 for the state variant);
        ``bf16``: see ``Trunk``.
        """
        super().__init__()
        self.trunk = Trunk(repr_dim, feature_dim, bf16)
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
                 action_dim: int, bf16: bool = False) -> None:
        super().__init__()
        self.trunk = Trunk(repr_dim, feature_dim, bf16)
        in_dim = feature_dim + extra_dim + action_dim
        self.q1 = _mlp(in_dim, hidden_dim, 1)
        self.q2 = _mlp(in_dim, hidden_dim, 1)
        self.apply(_init_weights)

    def forward(self, h: torch.Tensor, extra: torch.Tensor | None,
                action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [self.trunk(h)] + ([] if extra is None else [extra]) + [action]
        z = torch.cat(parts, dim=-1)
        return self.q1(z).squeeze(-1), self.q2(z).squeeze(-1)

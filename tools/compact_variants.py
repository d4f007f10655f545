"""``sole-r1 train compact`` with one of the training variants that were measured and not kept.

The data README's "The loss, the labels' balance and the quote's noise", "The first frame of
another episode" and "A crop at twice the detail" made their numbers with this wrapper; it
patches ``sole_r1_ros.compact`` in this process only, then runs ``sole-r1 train compact`` with
the arguments given (or, where they start with ``eval``, that command: a crop file needs the
patched network to load). ``SOLE_VARIANT`` picks:

- ``mse``: the mean squared error (times ``SOLE_MSE_SCALE``, 5: its gradient at a 10-point
  error is the smooth L1's) instead of the smooth L1 loss;
- ``balanced``: each training frame drawn with weight 1 / (frames in its 10-point label bin)
  ** ``SOLE_BAL_POW`` (0.5), instead of every frame equally likely;
- ``first_elsewhere``: a share ``SOLE_SWAP`` (0.3) of the queries of the first data folder (a
  fixed camera) take their first frame from another episode of the same task, so that the
  answer must come from how the scene is now, not from how much it changed;
- ``crop``: 128 px frames (``sole-r1 synth --image-size 128``), the external view read whole
  at 64 px and as a 64 px crop at full detail placed by a learnt spatial transformer, the
  wrist view at 64 px.

The third variant of the first section is a flag of the command itself (``--previous-noise 30``).

    SOLE_VARIANT=mse python tools/compact_variants.py --data runs/compact_data ... --out x.pt
    SOLE_VARIANT=crop python tools/compact_variants.py eval reward --model crop.pt ...
"""
import dataclasses
import os
import sys
import types

import torch
from torch import nn
import torch.nn.functional as functional

from sole_r1_ros.cli import main
from sole_r1_ros.compact import model, train

VARIANT = os.environ.get('SOLE_VARIANT', '')


def _use_mse() -> None:
    scale = float(os.environ.get('SOLE_MSE_SCALE', '5'))
    patched = types.SimpleNamespace(**{name: getattr(functional, name)
                                       for name in dir(functional) if not name.startswith('__')})
    patched.smooth_l1_loss = lambda prediction, target, beta=0.05: scale * functional.mse_loss(
        prediction, target)
    train.F = patched


def _balance_labels() -> None:
    power = float(os.environ.get('SOLE_BAL_POW', '0.5'))
    original = train.QuerySampler.__init__

    def init(self, bank, *args, **kwargs):
        original(self, bank, *args, **kwargs)
        episode_of = torch.repeat_interleave(torch.arange(len(bank.starts)), bank.lengths)
        index = torch.arange(bank.labels.shape[0]) - bank.starts[episode_of]
        label_bin = (bank.labels.clamp(0, 100) / 10).long().clamp(max=9)
        counts = torch.bincount(label_bin[index >= 1], minlength=10).float().clamp(min=1)
        self._frame_weights = (index >= 1).float() / counts[label_bin] ** power
        self._episode_of, self._index = episode_of, index
        print('frames per 10-point label bin', counts.tolist(), flush=True)

    def sample(self, size):
        frame = torch.multinomial(self._frame_weights, size, replacement=True,
                                  generator=self._generator)
        return self.posed(self._episode_of[frame], self._index[frame])

    train.QuerySampler.__init__ = init
    train.QuerySampler.sample = sample


def _first_elsewhere() -> None:
    share = float(os.environ.get('SOLE_SWAP', '0.3'))
    original_gather = train.QuerySampler._gather

    def gather(self, episode, previous, current, from_zero):
        batch = original_gather(self, episode, previous, current, from_zero)
        bank, gen = self._bank, self._generator
        if not hasattr(self, '_peers'):
            first_folder = bank.sources == 0
            self._peers = [torch.nonzero(first_folder & (bank.tasks == bank.tasks[e])).squeeze(1)
                           if bool(first_folder[e]) else None for e in range(bank.episodes)]
        draws = torch.rand(episode.shape[0], generator=gen)
        rows, others = [], []
        for row, e in enumerate(episode.tolist()):
            peers = self._peers[e]
            if draws[row] < share and peers is not None and peers.numel() > 1:
                pick = int(torch.randint(0, peers.numel(), (1,), generator=gen))
                rows.append(row)
                others.append(int(peers[pick]))
        if rows:
            firsts = bank.views(torch.tensor(others), torch.zeros(len(rows), 1, dtype=torch.long))
            rows_t = torch.tensor(rows)
            batch.views[rows_t, 0, 0] = firsts[:, 0, 0]
            wrist = batch.has_wrist[rows_t] > 0  # a blanked wrist view stays blank
            batch.views[rows_t[wrist], 1, 0] = firsts[wrist, 1, 0]
        return batch

    train.QuerySampler._gather = gather


class _Halved(model._ViewEncoder):
    """The plain view encoder on frames halved (64 px of 128): the wrist view, the whole view."""

    def __init__(self, config):
        super().__init__(dataclasses.replace(config, image_size=config.image_size // 2))

    def forward(self, frames, goal):
        batch, times = frames.shape[:2]
        halved = functional.avg_pool2d(frames.flatten(0, 1), 2)
        return super().forward(halved.view(batch, times, *halved.shape[1:]), goal)


class _CropView(nn.Module):
    """The whole external view at half its side, and a crop of half its side at full detail.

    Where the crop goes is learnt (a spatial transformer, Jaderberg et al. 2015): a linear
    layer reads the whole view's features and the goal and places the crop, bilinearly
    sampled, starting at the centre. A crop at the largest change between the frames, tried
    first, lands on the arm, which moves most. ``project`` joins both views' features and the
    crop's place, so the scene adversary's hook reads the joined features.
    """

    def __init__(self, config):
        super().__init__()
        self.half = config.image_size // 2
        self.whole = _Halved(config)
        self.crop = model._ViewEncoder(dataclasses.replace(config, image_size=self.half))
        width = config.feature_dim
        self.place = nn.Linear(width + config.goal_features, 2)
        nn.init.zeros_(self.place.weight)
        nn.init.zeros_(self.place.bias)
        self.project = nn.Sequential(nn.Linear(2 * width + 2, width), nn.LayerNorm(width),
                                     nn.ReLU())

    def forward(self, frames, goal):
        batch, times, channels = frames.shape[:3]
        whole = self.whole(frames, goal)
        shift = 0.5 * torch.tanh(self.place(torch.cat([whole, goal], dim=1)))  # B x 2 (x, y)
        theta = torch.zeros(batch, 2, 3)
        theta[:, 0, 0] = theta[:, 1, 1] = 0.5
        theta = theta + functional.pad(shift[:, :, None], (2, 0))
        grid = functional.affine_grid(theta, (batch, 1, self.half, self.half),
                                      align_corners=False)
        crops = functional.grid_sample(frames.flatten(1, 2), grid, align_corners=False)
        crops = crops.view(batch, times, channels, self.half, self.half)
        return self.project(torch.cat([whole, self.crop(crops, goal), shift], dim=1))


def _learnt_crop() -> None:
    """128 px frames: the external view whole at 64 px and a learnt 64 px crop at full detail."""
    original_init = model.CompactProgressNet.__init__

    def init(self, config=None):
        original_init(self, config)
        if self.config.image_size >= 128:
            self.external = _CropView(self.config)
            self.wrist = _Halved(self.config)

    model.CompactProgressNet.__init__ = init
    original_train = train.train

    def train_at_128(data, out, config, *args, **kwargs):
        if not config.init:
            config = dataclasses.replace(
                config, model=dataclasses.replace(config.model, image_size=128),
                shift_px=2 * config.shift_px)
        return original_train(data, out, config, *args, **kwargs)

    train.train = train_at_128


if __name__ == '__main__':
    patches = {'mse': _use_mse, 'balanced': _balance_labels, 'first_elsewhere': _first_elsewhere,
               'crop': _learnt_crop}
    if VARIANT not in patches:
        sys.exit(f'SOLE_VARIANT must be one of {sorted(patches)}, got {VARIANT!r}')
    patches[VARIANT]()
    command = sys.argv[1:] if sys.argv[1:2] == ['eval'] else ['train', 'compact', *sys.argv[1:]]
    sys.exit(main(command))

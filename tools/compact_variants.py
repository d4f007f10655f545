"""``sole-r1 train compact`` with one of two training variants that were measured and not kept.

The data README's "The loss, the labels' balance and the quote's noise" made its numbers with
this wrapper; it patches ``sole_r1_ros.compact.train`` in this process only, then runs the
command with the arguments given. ``SOLE_VARIANT`` picks:

- ``mse``: the mean squared error (times ``SOLE_MSE_SCALE``, 5: its gradient at a 10-point
  error is the smooth L1's) instead of the smooth L1 loss;
- ``balanced``: each training frame drawn with weight 1 / (frames in its 10-point label bin)
  ** ``SOLE_BAL_POW`` (0.5), instead of every frame equally likely.

The third variant of that section is a flag of the command itself (``--previous-noise 30``).

    SOLE_VARIANT=mse python tools/compact_variants.py --data runs/compact_data ... --out x.pt
"""
import os
import sys
import types

import torch
import torch.nn.functional as functional

from sole_r1_ros.cli import main
from sole_r1_ros.compact import train

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


if __name__ == '__main__':
    patches = {'mse': _use_mse, 'balanced': _balance_labels}
    if VARIANT not in patches:
        sys.exit(f'SOLE_VARIANT must be one of {sorted(patches)}, got {VARIANT!r}')
    patches[VARIANT]()
    sys.exit(main(['train', 'compact', *sys.argv[1:]]))

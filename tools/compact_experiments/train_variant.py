"""Train the compact progress model on several labelled folders, optionally with scene-blind features.

With ``--scene-adversarial W`` a classifier of the training scene (an episode's ``scene`` label,
else its task) reads the two views' features through a gradient reversal layer (Ganin &
Lempitsky 2015) and its cross-entropy is added with weight W: the view encoders learn features
from which the scene cannot be told, while the forward and undoing motions of one scene stay
apart. The classifier is not saved; the checkpoint is the usual one. W = 0 is
``sole-r1 train compact`` on the same folders with every extra episode trained
(``val_fraction=0``: only the plain copy's split='val' episodes validate).

Usage:  python train_variant.py --seed 0 --out m.pt --epochs 2.5587 \
            --data runs/compact_data runs/undo runs/object_motion --scene-adversarial 0.1
"""
import argparse
import math
import re
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sole_r1_ros.compact import train as T

HELD = ('door-close-v3', 'faucet-close-v3', 'handle-press-side-v3', 'plate-slide-back-side-v3',
        'push-back-v3', 'window-close-v3')


def scene_of(episode) -> str:
    scene = episode.meta.get('scene') if episode.meta else None
    return scene or re.sub(r'-(reversed|obj-[a-z]+)-v3$', '-v3', episode.task_id)


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -grad


def use_scene_adversary(weight: float) -> None:
    """Patch ``compact.train`` so that training adds the scene adversary's loss."""
    bank_init, gather = T.FrameBank.__init__, T.QuerySampler._gather

    def init(self, episodes, credit, goal_ids, size, sources=None):
        bank_init(self, episodes, credit, goal_ids, size, sources)
        names = sorted({scene_of(e) for e in episodes})
        index = {n: i for i, n in enumerate(names)}
        self.scene = torch.tensor([index[scene_of(e)] for e in episodes])
        self.scenes = len(names)

    def gather_with_scene(self, episode, previous, current, from_zero):
        batch = gather(self, episode, previous, current, from_zero)
        batch.scene = self._bank.scene[episode]
        return batch

    def optimise(model, sampler, val_queries, config, frames, folders, on_step):
        # train._optimise with the adversary; the schedule, batches and validation are its own.
        scenes = sampler._bank.scenes
        print('scenes', scenes, flush=True)
        head = nn.Sequential(nn.Linear(2 * model.config.feature_dim, 128), nn.ReLU(),
                             nn.Linear(128, scenes))
        captured = {}
        model.external.project.register_forward_hook(lambda m, i, o: captured.__setitem__('e', o))
        model.wrist.project.register_forward_hook(lambda m, i, o: captured.__setitem__('w', o))
        optimiser = torch.optim.AdamW(list(model.parameters()) + list(head.parameters()),
                                      lr=config.learning_rate, weight_decay=config.weight_decay)
        max_steps = math.ceil(config.epochs * frames / config.batch_size)
        generator = torch.Generator().manual_seed(config.seed + 1)
        start = time.perf_counter()
        best = {'val': None, 'state': None, 'step': 0}
        step, losses, adversary, history = 0, [], [], []
        while step < max_steps:
            cosine = 0.5 * (1.0 + math.cos(math.pi * step / max_steps))
            for group in optimiser.param_groups:
                group['lr'] = config.learning_rate * (0.05 + 0.95 * cosine)
            batch = sampler.sample(config.batch_size)
            views = T._brighten(T.random_shift(batch.views, config.shift_px, generator),
                                config.brightness, generator)
            prediction = model(views, batch.goal, batch.previous, batch.has_wrist)
            loss = F.smooth_l1_loss(prediction / 100.0, batch.target / 100.0, beta=0.05)
            guess = head(_Reverse.apply(torch.cat([captured['e'], captured['w']], dim=1)))
            adversary_loss = F.cross_entropy(guess, batch.scene)
            optimiser.zero_grad(set_to_none=True)
            (loss + weight * adversary_loss).backward()
            optimiser.step()
            step += 1
            losses.append(loss.item())
            adversary.append(adversary_loss.item())
            if step % config.eval_every_steps == 0:
                metrics = T._validate(model, val_queries, step, losses, best, history, config,
                                      folders)
                print(step, 'adversary', round(float(np.mean(adversary[-200:])), 3),
                      {k: round(v, 4) for k, v in metrics.items()}, flush=True)
        T._validate(model, val_queries, step, losses, best, history, config, folders)
        seconds = time.perf_counter() - start
        return {'steps': step, 'samples': step * config.batch_size, 'train_seconds': seconds,
                'samples_per_s': step * config.batch_size / max(seconds, 1e-9),
                'best_step': best['step'], 'best_val': best['val'], 'history': history,
                '_best_state': best['state']}

    T.FrameBank.__init__ = init
    T.QuerySampler._gather = gather_with_scene
    T._optimise = optimise


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', required=True)
    parser.add_argument('--epochs', type=float, required=True)
    parser.add_argument('--data', nargs='+', required=True)
    parser.add_argument('--scene-adversarial', type=float, default=0.0, metavar='W')
    args = parser.parse_args()
    if args.scene_adversarial > 0:
        use_scene_adversary(args.scene_adversarial)
    config = T.TrainConfig(exclude_tasks=HELD, epochs=args.epochs, minutes=120,
                           eval_every_steps=250, seed=args.seed, threads=1, val_fraction=0.0)
    info = T.train(args.data, args.out, config)
    print({k: info[k] for k in ('steps', 'train_seconds', 'train_frames', 'val_episodes')
           if k in info})

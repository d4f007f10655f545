"""Train the compact progress network on a synthetic dataset (``sole-r1 synth``).

Each sample is one SOLE-R1 query drawn from a recorded episode: the first frame, an earlier
frame as "previous" (a few frames back, as a query schedule would pick it, or anywhere
earlier) and a current frame, with a goal phrasing drawn from the task's goal and its
paraphrases, and the previous frame's label as the previous progress (plus noise, since at run
time it is the model's own earlier answer). The target is the simulator's progress, plus an
optional small credit for closing in on the object (see ``TrainConfig.approach_credit``).
Validation runs on the dataset's split='val' episodes of the same tasks; the best weights are
kept.
"""
from dataclasses import asdict, dataclass
import logging
import math
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from sole_r1_ros.compact.goals import GoalEncoder, TRAIN_PARAPHRASES
from sole_r1_ros.compact.model import CompactConfig, CompactProgressNet, save_checkpoint
from sole_r1_ros.sim.tasks import TASK_GOALS
from sole_r1_ros.synth import format as fmt
from sole_r1_ros.synth.behaviours import approach_fraction

logger = logging.getLogger(__name__)

_RECENT_PREVIOUS_FRAMES = 6


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one ``sole-r1 train compact`` run."""

    tasks: tuple[str, ...] | None = None
    '''Tasks to train on; None: every task of the dataset.'''
    minutes: float = 15.0
    '''Wall-clock budget of the optimisation [min]; training stops at this or ``epochs``.'''
    epochs: float | None = None
    '''Passes over the training frames (one sample per frame each); None: time only.'''
    batch_size: int = 64
    learning_rate: float = 1e-3
    '''Peak Adam learning rate, cosine-decayed to 5 % over the budget.'''
    weight_decay: float = 1e-4
    previous_noise: float = 8.0
    '''Std [%] of the noise on the previous-progress input (it is a model answer at run time).'''
    from_zero_fraction: float = 0.1
    '''Share of samples posed as from-zero queries (previous = first frame, previous 0%).'''
    no_wrist_fraction: float = 0.1
    '''Share of samples with the wrist view blanked (the protocol's external-only variant).'''
    approach_credit: float = 10.0
    '''Progress [%] credited for bringing the hand to the task's first object, pro rata,
    before the object moves: target = max(progress, credit x approach fraction). The
    simulator's progress is flat 0 until the object moves, which gives an RL learner no
    signal while reaching and makes value-order correlation on expert videos meaningless for
    most of an episode. 0 trains on the simulator's progress alone.'''
    shift_px: int = 3
    '''Random-shift augmentation [px] (DrQ), the same shift for one sample's frames.'''
    eval_every_s: float = 60.0
    '''Validate (and keep the best weights) this often [s] and at the end.'''
    threads: int = 1
    '''torch CPU threads for training. 1 by default: on a shared 2-core machine a second
    OpenMP thread that gets descheduled stalls every layer (measured 3x slower than 1).'''
    seed: int = 0
    model: CompactConfig = CompactConfig()

    def __post_init__(self) -> None:
        if self.minutes <= 0 or (self.epochs is not None and self.epochs <= 0):
            raise ValueError(f'minutes and epochs must be > 0, got {self.minutes}, '
                             f'{self.epochs}')
        if self.batch_size < 2 or self.learning_rate <= 0 or self.threads < 1:
            raise ValueError('batch_size must be >= 2, learning_rate > 0 and threads >= 1')
        for name in ('from_zero_fraction', 'no_wrist_fraction'):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f'{name} must be in [0, 1], got {getattr(self, name)}')
        if self.approach_credit < 0 or self.approach_credit > 50 or self.previous_noise < 0:
            raise ValueError('approach_credit must be in [0, 50] and previous_noise >= 0')


class FrameBank:
    """Every frame of the chosen episodes in one uint8 tensor, with per-episode offsets."""

    def __init__(self, root: str, entries: Sequence[dict[str, Any]], credit: float,
                 goal_ids: dict[str, int]) -> None:
        if not entries:
            raise ValueError(f'no episodes selected in {root}')
        views, labels, starts, lengths, tasks = [], [], [], [], []
        offset = 0
        for entry in entries:
            episode = fmt.load_episode(root, entry['episode_id'])
            arrays = episode.arrays
            views.append(np.stack([arrays['external'], arrays['wrist']], axis=1))
            labels.append(training_target(arrays['progress'], arrays['state'], credit))
            starts.append(offset)
            lengths.append(episode.num_frames)
            tasks.append(goal_ids[entry['task']])
            offset += episode.num_frames
        # N x 2 x 3 x H x W: channels first once, so batches are plain gathers.
        self.views = torch.from_numpy(np.concatenate(views)).permute(0, 1, 4, 2, 3).contiguous()
        self.labels = torch.from_numpy(np.concatenate(labels).astype(np.float32))
        self.starts = torch.tensor(starts)
        self.lengths = torch.tensor(lengths)
        self.tasks = torch.tensor(tasks)
        self.entries = list(entries)

    @property
    def num_frames(self) -> int:
        return int(self.labels.shape[0])


def training_target(progress: np.ndarray, states: np.ndarray, credit: float) -> np.ndarray:
    """Per-frame target [%]: max(simulator progress, credit x approach fraction)."""
    if credit <= 0:
        return progress.astype(np.float32)
    approach = np.array([approach_fraction(s, states[0]) for s in states], dtype=np.float32)
    return np.maximum(progress, credit * approach).astype(np.float32)


@dataclass
class Batch:
    """One training batch; views B x 2 x 3 x 3 x H x W uint8, the rest float32 (B,)."""

    views: torch.Tensor
    goal: torch.Tensor
    previous: torch.Tensor
    has_wrist: torch.Tensor
    target: torch.Tensor


class QuerySampler:
    """Draw random SOLE-R1 queries (first, previous, current) from a ``FrameBank``."""

    def __init__(self, bank: FrameBank, goal_table: torch.Tensor, goal_counts: torch.Tensor,
                 config: TrainConfig) -> None:
        self._bank = bank
        self._goals = goal_table
        self._goal_counts = goal_counts
        self._config = config
        self._generator = torch.Generator().manual_seed(config.seed)
        # Episodes drawn in proportion to their length: every frame is equally likely.
        self._weights = (bank.lengths - 1).clamp(min=0).float()

    def sample(self, size: int) -> Batch:
        bank, cfg, gen = self._bank, self._config, self._generator
        episode = torch.multinomial(self._weights, size, replacement=True, generator=gen)
        length = bank.lengths[episode]
        current = 1 + (torch.rand(size, generator=gen) * (length - 1)).long()
        recent = current - 1 - (torch.rand(size, generator=gen)
                                * _RECENT_PREVIOUS_FRAMES).long()
        anywhere = (torch.rand(size, generator=gen) * current).long()
        previous = torch.where(torch.rand(size, generator=gen) < 0.5, recent, anywhere)
        from_zero = torch.rand(size, generator=gen) < cfg.from_zero_fraction
        previous = torch.where(from_zero, torch.zeros_like(previous), previous.clamp(min=0))
        return self._gather(episode, previous, current, from_zero)

    def _gather(self, episode: torch.Tensor, previous: torch.Tensor, current: torch.Tensor,
                from_zero: torch.Tensor) -> Batch:
        bank, cfg, gen = self._bank, self._config, self._generator
        size = episode.shape[0]
        start = bank.starts[episode]
        index = torch.stack([start, start + previous, start + current], dim=1)
        views = bank.views[index].transpose(1, 2)  # B x 2 views x 3 times x 3 x H x W
        has_wrist = (torch.rand(size, generator=gen) >= cfg.no_wrist_fraction).float()
        views[:, 1] *= has_wrist.to(torch.uint8)[:, None, None, None, None]
        noise = torch.randn(size, generator=gen) * cfg.previous_noise
        prev_value = (bank.labels[start + previous] + noise).round().clamp(-100, 100)
        prev_value = torch.where(from_zero, torch.zeros_like(prev_value), prev_value)
        task = bank.tasks[episode]
        phrasing = (torch.rand(size, generator=gen) * self._goal_counts[task]).long()
        return Batch(views, self._goals[task, phrasing], prev_value, has_wrist,
                     bank.labels[start + current])


def random_shift(views: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each sample's frames by up to ``pad`` px (DrQ augmentation), edges replicated."""
    if pad <= 0:
        return views
    size = views.shape[0]
    height, width = views.shape[-2:]
    flat = views.reshape(size, -1, height, width)
    padded = F.pad(flat.float(), (pad, pad, pad, pad), mode='replicate').to(torch.uint8)
    offsets = torch.randint(0, 2 * pad + 1, (size, 2), generator=generator).tolist()
    # A slice per sample is far cheaper on the CPU than one gather with index tensors.
    shifted = torch.stack([padded[i, :, dy:dy + height, dx:dx + width]
                           for i, (dy, dx) in enumerate(offsets)])
    return shifted.reshape(views.shape)


def goal_tables(tasks: Sequence[str], encoder: GoalEncoder
                ) -> tuple[torch.Tensor, torch.Tensor, list[list[str]]]:
    """Embed each task's phrasings: (T x P x D table, T counts, texts), padded by repetition."""
    texts = [[TASK_GOALS[t], *TRAIN_PARAPHRASES.get(t, ())] for t in tasks]
    width = max(len(p) for p in texts)
    table = np.stack([encoder.encode([p[i % len(p)] for i in range(width)]) for p in texts])
    return (torch.from_numpy(table), torch.tensor([len(p) for p in texts]), texts)


def validation_queries(bank: FrameBank, goal_table: torch.Tensor, stride: int = 4) -> Batch:
    """Fixed validation set: every other frame of every episode (and its last) against the
    frame ``stride`` back, with the canonical goal and the true previous label."""
    episodes, previous, current = [], [], []
    for e, length in enumerate(bank.lengths.tolist()):
        if length < 2:
            continue
        for j in sorted({*range(1, length, 2), length - 1}):
            episodes.append(e)
            current.append(j)
            previous.append(max(0, j - stride))
    episode = torch.tensor(episodes)
    start = bank.starts[episode]
    index = torch.stack([start, start + torch.tensor(previous),
                         start + torch.tensor(current)], dim=1)
    size = len(episodes)
    return Batch(bank.views[index].transpose(1, 2), goal_table[bank.tasks[episode], 0],
                 bank.labels[start + torch.tensor(previous)].round(), torch.ones(size),
                 bank.labels[start + torch.tensor(current)])


def evaluate(model: CompactProgressNet, batch: Batch, chunk: int = 512) -> dict[str, float]:
    """Return MAE [%], RMSE [%] and Pearson r of the model on a fixed batch."""
    model.eval()
    predictions = []
    with torch.inference_mode():
        for s in range(0, batch.target.shape[0], chunk):
            predictions.append(model(batch.views[s:s + chunk], batch.goal[s:s + chunk],
                                     batch.previous[s:s + chunk],
                                     batch.has_wrist[s:s + chunk]))
    model.train()
    prediction = torch.cat(predictions).clamp(-100, 100).numpy()
    target = batch.target.numpy()
    error = prediction - target
    pearson = float(np.corrcoef(prediction, target)[0, 1]) if target.std() > 0 else float('nan')
    return {'mae': float(np.abs(error).mean()), 'rmse': float(np.sqrt((error ** 2).mean())),
            'pearson': pearson}


def train(root: str, out: str, config: TrainConfig,
          on_step: Callable[[int, float, dict[str, float] | None], None] | None = None,
          extra_info: dict[str, Any] | None = None,
          encoder: GoalEncoder | None = None) -> dict[str, Any]:
    """Train on ``root``'s split='train' episodes, validate on split='val', save to ``out``.

    Args:
        encoder: goal encoder (default: MiniLM with an empty cache); its cache, holding every
            task's goal and phrasings, is saved with the checkpoint.

    Returns:
        The info stored in the checkpoint (tasks, sizes, timings, best validation metrics).

    Raises:
        FileNotFoundError, ValueError: no dataset, unknown tasks, or no episodes to train on.
    """
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    manifest = fmt.read_manifest(root)
    tasks = tuple(config.tasks or sorted({e['task'] for e in manifest['episodes']}))
    encoder = encoder or GoalEncoder()
    table, counts, texts = goal_tables(tasks, encoder)
    goal_ids = {t: i for i, t in enumerate(tasks)}
    load_start = time.perf_counter()
    train_bank = FrameBank(root, fmt.select_episodes(manifest, tasks, 'train'),
                           config.approach_credit, goal_ids)
    val_entries = fmt.select_episodes(manifest, tasks, 'val')
    val_batch = validation_queries(
        FrameBank(root, val_entries, config.approach_credit, goal_ids), table
    ) if val_entries else None
    logger.info('loaded %d train frames (%d episodes), %d val episodes in %.0f s',
                train_bank.num_frames, len(train_bank.entries), len(val_entries),
                time.perf_counter() - load_start)
    model = CompactProgressNet(config.model)
    result = _optimise(model, QuerySampler(train_bank, table, counts, config), val_batch,
                       config, train_bank.num_frames, on_step)
    # Cache every goal the model may be asked about: all tasks' canonical goals and phrasings.
    encoder.encode(list(TASK_GOALS.values()))
    info = {'tasks': list(tasks), 'goals': texts, 'data': root,
            'train_episodes': len(train_bank.entries), 'train_frames': train_bank.num_frames,
            'val_episodes': len(val_entries), 'config': _config_json(config),
            **result, **(extra_info or {})}
    model.load_state_dict(result.pop('_best_state'))
    info.pop('_best_state', None)
    save_checkpoint(out, model, encoder.cache, info)
    return info


def _optimise(model: CompactProgressNet, sampler: QuerySampler, val_batch: Batch | None,
              config: TrainConfig, frames: int,
              on_step: Callable[[int, float, dict[str, float] | None], None] | None
              ) -> dict[str, Any]:
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    budget_s = config.minutes * 60.0
    max_steps = math.inf if config.epochs is None else math.ceil(
        config.epochs * frames / config.batch_size)
    generator = torch.Generator().manual_seed(config.seed + 1)
    start = last_eval = time.perf_counter()
    best: dict[str, Any] = {'val': None, 'state': None, 'step': 0}
    step, losses, history = 0, [], []
    while True:
        elapsed = time.perf_counter() - start
        done = max(elapsed / budget_s, step / max_steps)
        if done >= 1.0:
            break
        cosine = 0.5 * (1.0 + math.cos(math.pi * done))
        for group in optimiser.param_groups:
            group['lr'] = config.learning_rate * (0.05 + 0.95 * cosine)
        batch = sampler.sample(config.batch_size)
        views = random_shift(batch.views, config.shift_px, generator)
        prediction = model(views, batch.goal, batch.previous, batch.has_wrist)
        loss = F.smooth_l1_loss(prediction / 100.0, batch.target / 100.0, beta=0.05)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        step += 1
        losses.append(loss.item())
        metrics = None
        if time.perf_counter() - last_eval >= config.eval_every_s:
            metrics = _validate(model, val_batch, step, losses, best, history)
            last_eval = time.perf_counter()
        if on_step is not None:
            on_step(step, losses[-1], metrics)
    _validate(model, val_batch, step, losses, best, history)
    if on_step is not None:
        on_step(step, losses[-1] if losses else float('nan'), history[-1])
    seconds = time.perf_counter() - start
    return {'steps': step, 'samples': step * config.batch_size, 'train_seconds': seconds,
            'samples_per_s': step * config.batch_size / max(seconds, 1e-9),
            'best_step': best['step'], 'best_val': best['val'], 'history': history,
            '_best_state': best['state']}


def _validate(model: CompactProgressNet, val_batch: Batch | None, step: int,
              losses: list[float], best: dict[str, Any], history: list[dict]) -> dict:
    metrics = {'step': step, 'train_loss': float(np.mean(losses[-200:])) if losses else 0.0}
    if val_batch is not None:
        metrics.update({f'val_{k}': v for k, v in evaluate(model, val_batch).items()})
    history.append(metrics)
    # Without validation data the latest weights are kept.
    if (best['val'] is None or 'val_mae' not in metrics
            or metrics['val_mae'] <= best['val']['val_mae']):
        best.update(val=metrics, step=step, state={k: v.detach().clone()
                                                   for k, v in model.state_dict().items()})
    logger.info('step %d: %s', step, {k: round(v, 4) for k, v in metrics.items()})
    return metrics


def _config_json(config: TrainConfig) -> dict[str, Any]:
    data = asdict(config)
    data['tasks'] = list(config.tasks) if config.tasks else None
    data['model']['channels'] = list(config.model.channels)
    return data

"""Train the compact progress network on labelled episodes (``sole_r1_ros.labelled``).

Any source in the labelled-episode layout works: synthetic episodes (``sole-r1 synth``, simulator
truth), SOLE-R1's own answers on a user's recordings (``sole-r1 score``/``score-bag
--labelled-out``: distillation) or hand labels. Each sample is one SOLE-R1 query drawn from an
episode: the first frame, an earlier frame as "previous" (a few frames back, as a query schedule
would pick it, or anywhere earlier) and a current frame, with a goal phrasing drawn from the
episode's goal and its paraphrases, and the previous frame's label as the previous progress
(plus noise, since at run time it is the model's own earlier answer), or optionally the
network's own answer on that previous frame (``own_previous_fraction``). The target is the label,
plus an optional small credit for closing in on the object where the episode carries it
(``TrainConfig.approach_credit``). Validation runs on each data folder's split='val'
episodes, or a share of its episodes where it marks none, against the labels without the credit;
the best weights are kept. Each
folder can be given its share of the training queries (``data_shares``), so a few recordings
of one task are not drowned by thousands of synthetic episodes. Training can start from a
checkpoint (``init``), e.g. the shipped one.
"""
from collections import Counter
import dataclasses
from dataclasses import dataclass
import functools
import hashlib
import logging
import math
import os
import time
from typing import Any, Callable, Collection, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from sole_r1_ros import labelled
from sole_r1_ros.compact.goals import EMBEDDING_DIM, GoalEncoder
from sole_r1_ros.compact.model import (
    CompactConfig, CompactProgressNet, goal_vectors, load_checkpoint, save_checkpoint)
from sole_r1_ros.compact.scene_adversary import scene_of, SceneAdversary
from sole_r1_ros.configuration import option, validate
from sole_r1_ros.evaluation.metrics import pearson
from sole_r1_ros.labelled import LabelledEpisode
from sole_r1_ros.reward import protocol
from sole_r1_ros.reward.episode import offline_query_steps
from sole_r1_ros.run_progress import run_share
from sole_r1_ros.sim.tasks import TASK_GOALS

logger = logging.getLogger(__name__)

_RECENT_PREVIOUS_FRAMES = 6
SHIPPED = 'shipped'
'''``TrainConfig.init`` value that starts from the checkpoint shipped in the package.'''


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one ``sole-r1 train compact`` run."""

    tasks: tuple[str, ...] = option((), "tasks (the episodes' task ids) to train on; empty: "
                                    'every task of the data')
    exclude_tasks: tuple[str, ...] = option((), 'tasks never loaded: held out for model '
                                            'selection')
    minutes: float = option(15.0, 'wall-clock budget of the optimisation [min]; training '
                            'stops at this or at epochs', range=(0.01, 10_000.0))
    epochs: float | None = option(None, 'passes over the training frames (one sample per frame '
                                  'each); None: time only', range=(1e-6, 1e6))
    batch_size: int = option(64, 'queries per optimiser step', range=(2, 65536))
    learning_rate: float = option(1e-3, 'peak AdamW learning rate, cosine-decayed to 5 % over '
                                  'the budget', range=(1e-8, 1.0))
    weight_decay: float = option(1e-4, 'AdamW weight decay', range=(0.0, 1.0))
    previous_noise: float = option(12.0, 'std of the noise on the previous-progress input [%] '
                                   '(it is a model answer at run time). 30 measured pooled '
                                   'AUROC 0.69 and 0.78 on unseen tasks in two seeds, no '
                                   'gain (data/README.md)', range=(0.0, 100.0))
    own_previous_fraction: float = option(
        0.0, "share of samples whose previous progress is the network's own answer on the "
        'previous frame, not the label plus noise (scheduled sampling: at run time it is the '
        "model's answer). 0.5 measured pooled Pearson 0.16-0.41 on unseen tasks in four seeds, "
        'the spread of training without it (data/README.md)', range=(0.0, 1.0))
    from_zero_fraction: float = option(0.1, 'share of samples posed as from-zero queries '
                                       '(previous = first frame, previous 0 %)',
                                       range=(0.0, 1.0))
    no_wrist_fraction: float = option(0.1, ('share of samples with the wrist view blanked (the '
                                      "protocol's external-only variant)"), range=(0.0, 1.0))
    approach_credit: float = option(
        10.0, "progress [%] credited for bringing the hand to the task's first object, pro "
        'rata, before the object moves, where an episode carries the approach fraction '
        '(synthetic data): target = max(label, credit x approach). The simulator progress '
        'is flat 0 until the object moves, which gives an RL learner no signal while reaching. '
        '0 trains on the labels alone', range=(0.0, 50.0))
    goal_dropout: float = option(0.3, 'share of samples asked with no goal (a zero embedding): '
                                 'the network also learns what progress looks like whatever '
                                 'the task, which is all it has on a task it never saw',
                                 range=(0.0, 1.0))
    goal_noise: float = option(0.025, 'std of Gaussian noise added to each goal-embedding '
                               'dimension before re-normalising (a unit vector of 384): '
                               'nearby phrasings and tasks must give similar answers',
                               range=(0.0, 1.0))
    shift_px: int = option(3, 'random-shift augmentation [px] (DrQ), the same shift for one '
                           "sample's frames", range=(0, 32))
    brightness: float = option(0.15, 'random brightness scale +- this per sample (the same for '
                               'its frames): lighting varies, progress does not',
                               range=(0.0, 0.9))
    val_fraction: float = option(0.2, "share of each task's episodes that validate when the "
                                 "data marks none split='val' (a user's recordings): chosen "
                                 "by a hash of each episode's id, never trained on; "
                                 'the weights of the best validation '
                                 'are kept. 0: train on every episode not marked val and, '
                                 'with none marked, keep the last weights',
                                 range=(0.0, 0.5))
    data_shares: tuple[float, ...] = option(
        (), "share of the training queries drawn from each data folder, in the folders' order "
        '(normalised to sum to 1), e.g. 0.5 0.5 for your own recordings beside the synthetic '
        'episodes, which would otherwise drown them; validation then weighs the error of '
        'each folder by its share. Empty: every training frame equally likely',
        range=(0.0, None))
    scene_adversarial: float = option(
        0.0, 'weight of a scene classifier played against through gradient reversal '
        '(compact/scene_adversary.py): the view features learn not to name the training '
        "scene (an episode's meta 'scene', else its task), which is all a network has to go "
        'on in a scene it never saw. 0.1 with the object-motion and undoing episodes moved '
        "unseen tasks' pooled Pearson 0.30 -> 0.51 in four seeds; 0.3 fell to 0.35 and cost "
        "the training tasks' fit (data/README.md). 0: off",
        range=(0.0, 10.0))
    keep_by: str = option(
        'chained', "which validation error picks the weights kept: 'chained', the model asked "
        "as the reward node and 'eval reward' ask it (10 queries per episode, each quoting its "
        "own previous answer); 'labels', every other frame quoting the true previous progress. "
        'Kept by the labels, make compact-model chose step 3,000 of 6,247 (MAE 6.0), whose own '
        "chains scored Pearson 0.82 on the training tasks' val episodes (data/README.md). "
        "With data_shares the labels' MAE weighed by the shares keeps them either way",
        choices=('chained', 'labels'))
    eval_every_s: float = option(60.0, 'validate (and keep the best weights) this often [s] '
                                 'and at the end', range=(0.1, 1e9))
    eval_every_steps: int = option(0, 'validate every this many steps instead (0: by time); '
                                   'with epochs this makes a run independent of the machine',
                                   range=(0, None))
    threads: int = option(1, 'torch CPU threads. 1 by default: on a shared 2-core machine a '
                          'second OpenMP thread that gets descheduled stalls every layer '
                          '(measured 3x slower than 1)', range=(1, 256))
    seed: int = option(0, 'seed of initialisation, sampling and augmentation',
                       range=(0, 2**31 - 1))
    init: str = option('', "start from this checkpoint ('shipped': the package's own file "
                       "of the data's kind, pictures or robot erased; '': random weights of "
                       'the model config)')
    model: CompactConfig = option(default_factory=CompactConfig,
                                  help='network shape (ignored with init: the checkpoint has one)')

    def __post_init__(self) -> None:
        validate(self)


class FrameBank:
    """Every frame of the chosen episodes, with per-episode labels, offsets, tasks and views.

    Frames are letterboxed to the network's size as the backend does at run time
    (``protocol.letterbox``) and kept as the episodes hold them, one array per episode and
    view, not copied into one tensor: the data is in memory once. An episode without a wrist
    view gives black wrist frames. ``sources`` numbers the data folder each episode came from;
    ``scenes`` numbers each episode's scene (``scene_adversary.scene_of``), in name order.
    """

    def __init__(self, episodes: Sequence[LabelledEpisode], credit: float,
                 goal_ids: dict[str, int], size: int,
                 sources: Sequence[int] | None = None) -> None:
        if not episodes:
            raise ValueError('no episodes to train on')
        sources = [0] * len(episodes) if sources is None else list(sources)
        if len(sources) != len(episodes):
            raise ValueError(f'{len(sources)} sources for {len(episodes)} episodes')
        self.size = size
        self._frames: list[tuple[np.ndarray, np.ndarray | None]] = []
        labels, starts, lengths, tasks, wrists = [], [], [], [], []
        offset = 0
        for episode in episodes:
            count = episode.num_frames
            self._frames.append((_fit(episode.external, count, size), None
                                 if episode.wrist is None else _fit(episode.wrist, count, size)))
            labels.append(training_target(episode, credit))
            starts.append(offset)
            lengths.append(count)
            tasks.append(goal_ids[episode.task_id])
            wrists.append(episode.wrist is not None)
            offset += count
        self.labels = torch.from_numpy(np.concatenate(labels).astype(np.float32))
        self.starts = torch.tensor(starts)
        self.lengths = torch.tensor(lengths)
        self.tasks = torch.tensor(tasks)
        self.has_wrist = torch.tensor(wrists, dtype=torch.float32)
        self.sources = torch.tensor(sources, dtype=torch.long)
        self.scene_names = sorted({scene_of(e) for e in episodes})
        number = {name: i for i, name in enumerate(self.scene_names)}
        self.scenes = torch.tensor([number[scene_of(e)] for e in episodes], dtype=torch.long)
        self.episodes = len(episodes)

    def views(self, episode: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """B x 2 views x K times x 3 x H x W uint8: frame ``frames[b, k]`` of ``episode[b]``.

        Frame numbers count from each episode's first frame.
        """
        batch, times = frames.shape
        out = np.zeros((batch, times, 2, self.size, self.size, 3), np.uint8)
        for row, (e, numbers) in enumerate(zip(episode.tolist(), frames.tolist())):
            external, wrist = self._frames[e]
            out[row, :, 0] = external[numbers]
            if wrist is not None:
                out[row, :, 1] = wrist[numbers]
        # The layout of one (frames x views) tensor indexed, then times and views swapped.
        return torch.from_numpy(out).permute(0, 1, 2, 5, 3, 4).contiguous().transpose(1, 2)

    @property
    def num_frames(self) -> int:
        return int(self.labels.shape[0])


def _fit(frames: Any, count: int, size: int) -> np.ndarray:
    """The first ``count`` frames letterboxed to ``size``, one by one (never all at full size)."""
    if (isinstance(frames, np.ndarray) and frames.shape[1:] == (size, size, 3)
            and frames.dtype == np.uint8):
        return frames[:count]
    fitted = np.empty((count, size, size, 3), np.uint8)
    for i in range(count):
        fitted[i] = _fit_frame(frames[i], size)
    return fitted


def _fit_frame(frame: Any, size: int) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.shape == (size, size, 3) and frame.dtype == np.uint8:
        return frame
    return protocol.letterbox(frame, size)


def shrink(episode: LabelledEpisode, size: int) -> LabelledEpisode:
    """The episode with its frames letterboxed to the network's ``size`` [px].

    Training shrinks each episode as it is read (a video's frames as they are decoded), so a
    robot's camera-resolution recordings cost what the network sees, not what the camera took.
    """
    count = episode.num_frames
    wrist = None if episode.wrist is None else _fit(episode.wrist, count, size)
    return dataclasses.replace(episode, external=_fit(episode.external, count, size),
                               wrist=wrist)


def training_target(episode: LabelledEpisode, credit: float) -> np.ndarray:
    """Per-frame target [%]: max(label, credit x approach fraction) where the episode has one."""
    progress = episode.truth().astype(np.float32)
    approach = episode.extras.get('approach')
    if credit <= 0 or approach is None:
        return progress
    return np.maximum(progress, credit * np.asarray(approach, dtype=np.float32))


@dataclass
class Batch:
    """One training batch; views B x 2 x 3 x 3 x H x W uint8, the rest float32 (B,)."""

    views: torch.Tensor
    goal: torch.Tensor
    previous: torch.Tensor
    has_wrist: torch.Tensor
    target: torch.Tensor
    scene: torch.Tensor | None = None
    '''The scene number of each query's episode (``FrameBank.scenes``), for the adversary.'''


class QuerySampler:
    """Draw random SOLE-R1 queries (first, previous, current) from a ``FrameBank``.

    With a ``model``, a share of the queries (``own_previous_fraction``) carry that model's own
    answer on their previous frame as the previous progress (scheduled sampling, one step deep).
    """

    def __init__(self, bank: FrameBank, goal_table: torch.Tensor, goal_counts: torch.Tensor,
                 config: TrainConfig, model: CompactProgressNet | None = None) -> None:
        self._bank = bank
        self._model = model
        self._goals = goal_table
        self._goal_counts = goal_counts
        self._config = config
        self._generator = torch.Generator().manual_seed(config.seed)
        self._weights = sampling_weights(bank, config.data_shares)

    @property
    def bank(self) -> FrameBank:
        return self._bank

    def sample(self, size: int) -> Batch:
        bank, gen = self._bank, self._generator
        episode = torch.multinomial(self._weights, size, replacement=True, generator=gen)
        length = bank.lengths[episode]
        current = 1 + (torch.rand(size, generator=gen) * (length - 1)).long()
        return self.posed(episode, current)

    def posed(self, episode: torch.Tensor, current: torch.Tensor) -> Batch:
        """The queries of these current frames: a recent or any earlier frame as previous."""
        cfg, gen, size = self._config, self._generator, episode.shape[0]
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
        views = bank.views(episode, torch.stack([torch.zeros_like(previous), previous, current],
                                                dim=1))  # B x 2 views x 3 times x 3 x H x W
        keep = (torch.rand(size, generator=gen) >= cfg.no_wrist_fraction).float()
        has_wrist = keep * bank.has_wrist[episode]
        views[:, 1] *= has_wrist.to(torch.uint8)[:, None, None, None, None]
        noise = torch.randn(size, generator=gen) * cfg.previous_noise
        prev_value = (bank.labels[start + previous] + noise).round().clamp(-100, 100)
        prev_value = torch.where(from_zero, torch.zeros_like(prev_value), prev_value)
        task = bank.tasks[episode]
        phrasing = (torch.rand(size, generator=gen) * self._goal_counts[task]).long()
        goal = self._goals[task, phrasing]
        if cfg.goal_noise > 0:  # on the sentence embedding, not on the action flags
            embedding = goal[:, :EMBEDDING_DIM]
            noise = cfg.goal_noise * torch.randn(embedding.shape, generator=gen)
            goal = torch.cat([F.normalize(embedding + noise, dim=-1),
                              goal[:, EMBEDDING_DIM:]], dim=1)
        keep_goal = (torch.rand(size, generator=gen) >= cfg.goal_dropout).float()
        batch = Batch(views, goal * keep_goal[:, None], prev_value, has_wrist,
                      bank.labels[start + current], bank.scenes[episode])
        if self._model is not None and cfg.own_previous_fraction > 0:
            own = (~from_zero & (previous >= 1)
                   & (torch.rand(size, generator=gen) < cfg.own_previous_fraction))
            self._answer_previous(batch, own.nonzero().squeeze(1), episode, previous)
        return batch

    def _answer_previous(self, batch: Batch, rows: torch.Tensor, episode: torch.Tensor,
                         previous: torch.Tensor) -> None:
        """Replace ``rows``' previous progress by the model's answer on their previous frame.

        That answer's own query is (first, an earlier frame, previous frame) with the earlier
        frame's label plus noise as its previous progress, the same goal and wrist view.
        """
        if rows.numel() == 0:
            return
        bank, cfg, gen = self._bank, self._config, self._generator
        start, frame = bank.starts[episode[rows]], previous[rows]
        earlier = (torch.rand(rows.numel(), generator=gen) * frame).long()
        views = bank.views(episode[rows], torch.stack([torch.zeros_like(frame), earlier, frame],
                                                      dim=1))
        has_wrist = batch.has_wrist[rows]
        views[:, 1] *= has_wrist.to(torch.uint8)[:, None, None, None, None]
        noise = torch.randn(rows.numel(), generator=gen) * cfg.previous_noise
        earlier_value = (bank.labels[start + earlier] + noise).round().clamp(-100, 100)
        earlier_value = torch.where(earlier == 0, torch.zeros_like(earlier_value),
                                    earlier_value)
        with torch.no_grad():
            answer = self._model(views, batch.goal[rows], earlier_value, has_wrist)
        batch.previous[rows] = answer.round().clamp(-100, 100)


def sampling_weights(bank: FrameBank, shares: Sequence[float] = ()) -> torch.Tensor:
    """Per-episode draw weights: every frame equally likely, or each folder its ``shares``.

    Within a folder frames stay equally likely; a folder's share is split over its frames.

    Raises:
        ValueError: a folder given a share has no frame to draw.
    """
    weights = (bank.lengths - 1).clamp(min=0).float()  # the current frame is never the first
    if not shares:
        return weights
    if int(bank.sources.max()) >= len(shares):
        raise ValueError(f'{len(shares)} data shares for {int(bank.sources.max()) + 1} data '
                         'folders')
    total_share = float(sum(shares))
    for source, share in enumerate(shares):
        mine = bank.sources == source
        frames = float(weights[mine].sum())
        if share > 0 and frames == 0:
            raise ValueError(f'data folder {source + 1} has a share ({share:g}) but no '
                             'training episode with 2 frames or more')
        if frames > 0:
            weights[mine] *= share / total_share / frames
    return weights


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


def goal_phrasings(episodes: Sequence[LabelledEpisode]) -> dict[str, list[str]]:
    """Task id -> its goal texts (each episode's goal and paraphrases, first seen first)."""
    texts: dict[str, dict[str, None]] = {}
    for episode in episodes:
        texts.setdefault(episode.task_id, {}).update(
            dict.fromkeys([episode.goal, *episode.paraphrases]))
    return {task: list(phrasings) for task, phrasings in texts.items()}


def goal_tables(phrasings: dict[str, list[str]], encoder: GoalEncoder, config: CompactConfig
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Embed each task's phrasings: (T x P x D table, T counts), padded by repetition."""
    texts = list(phrasings.values())
    width = max(len(p) for p in texts)
    table = np.stack([goal_vectors(config, encoder, [p[i % len(p)] for i in range(width)])
                      for p in texts])
    return torch.from_numpy(table), torch.tensor([len(p) for p in texts])


@dataclass
class ValidationSet:
    """The fixed validation queries, as frame numbers into a ``FrameBank``.

    Their views are gathered a chunk at a time when the model is evaluated, so the validation
    frames are in memory once (as the bank holds them), not copied into every query.
    """

    bank: FrameBank
    episode: torch.Tensor
    frames: torch.Tensor
    '''N x 3 frame numbers (first, previous, current) of each query in its episode.'''
    goal: torch.Tensor
    previous: torch.Tensor
    target: torch.Tensor
    source: torch.Tensor
    '''The data folder of each query's episode.'''

    def __len__(self) -> int:
        return int(self.target.shape[0])

    def batch(self, start: int, stop: int) -> Batch:
        """Queries ``start:stop`` with their views."""
        episode = self.episode[start:stop]
        return Batch(self.bank.views(episode, self.frames[start:stop]), self.goal[start:stop],
                     self.previous[start:stop], self.bank.has_wrist[episode],
                     self.target[start:stop])


def validation_queries(bank: FrameBank, goal_table: torch.Tensor, stride: int = 4
                       ) -> ValidationSet:
    """Build the fixed validation set.

    Every other frame of every episode (and its last) against the frame ``stride`` back, with
    the canonical goal and the true previous label.
    """
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
    frames = torch.stack([torch.zeros(len(episodes), dtype=torch.long), torch.tensor(previous),
                          torch.tensor(current)], dim=1)
    return ValidationSet(bank, episode, frames, goal_table[bank.tasks[episode], 0],
                         bank.labels[start + torch.tensor(previous)].round(),
                         bank.labels[start + torch.tensor(current)], bank.sources[episode])


def evaluate(model: CompactProgressNet, queries: ValidationSet, chunk: int = 512,
             folders: int = 1) -> dict[str, float]:
    """Return MAE [%], RMSE [%] and Pearson r of the model on the validation queries.

    With more than one data folder, also each folder's (``mae_folder1``, ``pearson_folder1``,
    ...; numbered from 1, absent where a folder has no validation episode).
    """
    model.eval()
    predictions = []
    with torch.inference_mode():
        for s in range(0, len(queries), chunk):
            batch = queries.batch(s, s + chunk)
            predictions.append(model(batch.views, batch.goal, batch.previous,
                                     batch.has_wrist))
    model.train()
    prediction = torch.cat(predictions).clamp(-100, 100).numpy()
    target = queries.target.numpy()
    metrics = {'mae': _mae(prediction, target),
               'rmse': float(np.sqrt(((prediction - target) ** 2).mean())),
               'pearson': pearson(prediction, target)}
    if folders > 1:
        source = queries.source.numpy()
        for folder in range(folders):
            mine = source == folder
            if mine.any():
                metrics[f'mae_folder{folder + 1}'] = _mae(prediction[mine], target[mine])
                metrics[f'pearson_folder{folder + 1}'] = pearson(prediction[mine], target[mine])
    return metrics


def evaluate_chained(model: CompactProgressNet, queries: ValidationSet,
                     num_queries: int) -> dict[str, float]:
    """MAE [%] and Pearson r of the model asked as the reward node asks it.

    ``num_queries`` frames of each validation episode, spread over it as ``eval reward`` asks
    them, each against the frame asked before, quoting the model's own answer there, not the
    teacher's label: a distilled file the labels' validation put at MAE 7.6 / Pearson 0.95
    answered its own chain at 28 / 0.40.
    """
    bank = queries.bank
    steps = [offline_query_steps(length, num_queries=num_queries) if length >= 2 else []
             for length in bank.lengths.tolist()]
    goals = {int(e): g for e, g in zip(queries.episode.tolist(), queries.goal)}
    before = {e: (0, 0.0) for e in goals}   # the frame asked before, the answer there
    predictions, targets = [], []
    model.eval()
    with torch.inference_mode():
        for k in range(max((len(s) for s in steps), default=0)):
            active = [e for e in goals if k < len(steps[e])]
            if not active:
                continue
            episode = torch.tensor(active)
            current = [steps[e][k] for e in active]
            frames = torch.tensor([[0, before[e][0], j] for e, j in zip(active, current)])
            previous = torch.tensor([round(before[e][1]) for e in active], dtype=torch.float32)
            answer = model(bank.views(episode, frames), torch.stack([goals[e] for e in active]),
                           previous, bank.has_wrist[episode]).clamp(-100, 100)
            for e, j, value in zip(active, current, answer.tolist()):
                before[e] = (j, value)
                predictions.append(value)
                targets.append(float(bank.labels[bank.starts[e] + j]))
    model.train()
    prediction, target = np.asarray(predictions), np.asarray(targets)
    return {'mae': _mae(prediction, target), 'pearson': pearson(prediction, target)}


def _mae(prediction: np.ndarray, target: np.ndarray) -> float:
    return float(np.abs(prediction - target).mean())


def train(data: str | Sequence[str], out: str, config: TrainConfig,
          on_step: Callable[[int, float, dict[str, float] | None, float], None] | None = None,
          extra_info: dict[str, Any] | None = None,
          encoder: GoalEncoder | None = None) -> dict[str, Any]:
    """Train on the episodes of ``data``, validate on the split='val' ones, save ``out``.

    Interrupted (Ctrl-C), the weights go beside an existing ``out``, as
    ``OUT.interrupted.pt``; ``info['out']`` says where they are.

    Args:
        data: one or more folders of labelled episodes (any layout ``labelled`` reads); each
            is split into training and validation episodes on its own (``split_validation``).
        on_step: called after every step with (step, loss, validation metrics or None, share
            of the run behind in [0, 1]: the steps of ``config.epochs`` or the time budget,
            whichever ends it first).
        encoder: goal encoder (default: MiniLM, with the cache of ``config.init``'s checkpoint
            when there is one); its cache, holding every task's goal and phrasings, is saved
            with the checkpoint.

    Returns:
        The info stored in the checkpoint (tasks, sizes, timings, best validation metrics).

    Raises:
        FileNotFoundError, ValueError: no data, no episodes to train on, or
            ``config.data_shares`` not one per folder.
    """
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    folders = [data] if isinstance(data, str) else list(data)
    if config.data_shares and (len(config.data_shares) != len(folders)
                               or sum(config.data_shares) <= 0):
        raise ValueError(f'data shares {list(config.data_shares)} for {len(folders)} data '
                         'folder(s): give one per folder, in order, not all 0')
    model, goal_encoder, base = _initial_model(config, encoder)
    load_start = time.perf_counter()
    by_folder = _load(folders, config, model.config.image_size)
    robot_erased = _data_robot_erased(by_folder)
    if config.init == SHIPPED and base is not None and base['robot_erased'] != robot_erased:
        # 'shipped' names the package's file of the data's kind: the erased one for erased data.
        model, goal_encoder, base = _initial_model(config, encoder, robot_erased)
    _check_start_kind(base, robot_erased)
    encoder = goal_encoder
    wrist_view = any(e.wrist is not None for episodes in by_folder for e in episodes)
    train_episodes, val_episodes, train_sources, val_sources = [], [], [], []
    seen_before = set(base['train_episode_ids']) if base is not None else set()
    for source, episodes in enumerate(by_folder):
        train_part, val_part = split_validation(episodes, config.val_fraction, seen_before)
        train_episodes += train_part
        val_episodes += val_part
        train_sources += [source] * len(train_part)
        val_sources += [source] * len(val_part)
    phrasings = goal_phrasings([e for episodes in by_folder for e in episodes])
    table, counts = goal_tables(phrasings, encoder, model.config)
    goal_ids = {task: i for i, task in enumerate(phrasings)}
    size = model.config.image_size
    train_bank = FrameBank(train_episodes, config.approach_credit, goal_ids, size,
                           train_sources)
    # Validated against the labels themselves: the approach credit is a training target, and
    # the weights kept are those closest to the truth (as ``eval reward`` scores them).
    val_queries = validation_queries(
        FrameBank(val_episodes, 0.0, goal_ids, size, val_sources), table
    ) if val_episodes else None
    val_count = len(val_episodes)
    # Which ones validated: a recording's scores carry no split, and evaluating the distilled
    # file on episodes it trained on would flatter it.
    val_ids = [episode.episode_id for episode in val_episodes]
    train_ids = [episode.episode_id for episode in train_episodes]   # eval reward warns of them
    del by_folder, episodes, train_episodes, val_episodes  # the banks hold the frames
    logger.info('loaded %d train frames (%d episodes), %d val episodes in %.0f s',
                train_bank.num_frames, train_bank.episodes, val_count,
                time.perf_counter() - load_start)
    result = _optimise(model, QuerySampler(train_bank, table, counts, config, model), val_queries,
                       config, train_bank.num_frames, len(folders), on_step)
    # Cache every goal the model may be asked about: all Meta-World goals and every phrasing.
    encoder.encode(list(TASK_GOALS.values()))
    info = {'tasks': list(phrasings), 'goals': phrasings, 'data': folders,
            'train_episodes': train_bank.episodes, 'train_frames': train_bank.num_frames,
            'val_episodes': val_count, 'val_episode_ids': val_ids,
            'train_episode_ids': train_ids,
            # and of those the starting weights had trained on (its own start's too)
            'init_train_episode_ids': sorted(seen_before - set(train_ids)),
            'config': _config_json(config),
            'robot_erased': robot_erased, 'wrist_view': wrist_view, 'init': base,
            **result, **(extra_info or {})}
    model.load_state_dict(result.pop('_best_state'))
    info.pop('_best_state', None)
    kept = info.get('best_val') or {}
    if 'val_chained_mae' in kept:   # measured when they were kept: not asked again
        info.update(val_chained_mae=kept['val_chained_mae'],
                    val_chained_pearson=kept['val_chained_pearson'])
    elif val_queries is not None:   # the kept weights, asked as the reward node will ask them
        chained = evaluate_chained(model, val_queries, num_queries=CHAINED_QUERIES)
        info.update(val_chained_mae=chained['mae'], val_chained_pearson=chained['pearson'])
    if info.get('interrupted'):
        # never under the name asked for: a run cut short replaced the file there (the one
        # fine-tuned from, perhaps, or a good one of an earlier run) with weights of a few
        # steps, and where none was, the next command of a script took them for the result
        out = f'{os.path.splitext(out)[0]}.interrupted.pt'
    info['out'] = str(out)
    save_checkpoint(out, model, encoder.cache, info)
    return info


_MIN_VAL_FRAMES = 10   # fewer frames tell too little to choose weights on
# Queries per validation episode of the chained validation: as many as eval reward asks.
CHAINED_QUERIES = 10


def split_validation(episodes: Sequence[LabelledEpisode], fraction: float,
                     trained_before: Collection[str] = ()
                     ) -> tuple[list[LabelledEpisode], list[LabelledEpisode]]:
    """Return (train, validation) episodes.

    The episodes marked split='val' validate. Where none is (SOLE-R1's scores of a user's
    recordings carry no split), about ``fraction`` of each task's episodes do, so a
    distillation still reports how it does on episodes it never saw and keeps its best
    weights; a task with a single episode only trains. Which ones is a property of each
    episode (a hash of its id under ``fraction``), not of the folder's order: a
    folder that grows by a new recording's scores never moves an episode that trained into
    validation, where a file fine-tuned from an earlier round's would be scored on it. A task
    none of whose episodes hashes under ``fraction`` validates on its lowest one. Only
    episodes a Pearson can be taken on validate (``_MIN_VAL_FRAMES`` frames or more, labels
    that change): a 3-frame episode at 0 % was a folder's whole validation, its Pearson NaN,
    and the weights were kept on it. Nor do the episodes of ``trained_before`` (ids the
    starting weights were trained on: an earlier round's file fine-tuned on a grown folder was
    validated on its own training episodes).
    """
    marked = [e for e in episodes if e.split == 'val']
    if marked or fraction <= 0:
        return [e for e in episodes if e.split != 'val'], marked
    by_task: dict[str, list[int]] = {}
    for index, episode in enumerate(episodes):
        by_task.setdefault(episode.task_id, []).append(index)
    chosen = set()
    for indices in by_task.values():
        total = len(indices)
        telling = sorted((i for i in indices if episodes[i].num_frames >= _MIN_VAL_FRAMES
                          and np.ptp(np.asarray(episodes[i].progress, np.float64)) > 1.0
                          and episodes[i].episode_id not in trained_before),
                         key=lambda i: _split_hash(episodes[i]))
        if total >= 2 and telling:
            under = [i for i in telling if _split_hash(episodes[i]) < fraction]
            chosen.update((under or telling[:1])[:total - 1])
    if chosen:
        logger.info('no episode is marked split=val: %d of %d validate', len(chosen),
                    len(episodes))
    return ([e for i, e in enumerate(episodes) if i not in chosen],
            [e for i, e in enumerate(episodes) if i in chosen])


def _split_hash(episode: LabelledEpisode) -> float:
    """A number in [0, 1) fixed by the episode's id, the same on every machine.

    Not by its task: ``score-bag`` names the task by the goal, and one recording scored under
    two phrasings of it validated in one folder and trained in the other.
    """
    digest = hashlib.blake2b(episode.episode_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, 'big') / 2.0 ** 64


def _initial_model(config: TrainConfig, encoder: GoalEncoder | None,
                   robot_erased: bool = False
                   ) -> tuple[CompactProgressNet, GoalEncoder, dict[str, Any] | None]:
    """The model to start from: random weights, ``config.init``'s file, or the shipped one.

    ``init='shipped'`` reads the package's file for pictures, or with ``robot_erased`` its
    file for frames with the robot erased.
    """
    if not config.init:
        return CompactProgressNet(config.model), encoder or GoalEncoder(), None
    from sole_r1_ros.compact.checkpoint_info import DEFAULT_CHECKPOINT, default_checkpoint_path
    from sole_r1_ros.compact.predictor import ERASED_CHECKPOINT

    path = config.init
    if config.init == SHIPPED:
        path = default_checkpoint_path(ERASED_CHECKPOINT if robot_erased else DEFAULT_CHECKPOINT)
    model, cache, info = load_checkpoint(path)
    if encoder is None:
        encoder = GoalEncoder(cache)
    base = {'checkpoint': path, 'tasks': info.get('tasks'), 'steps': info.get('steps'),
            'robot_erased': bool(info.get('robot_erased', False)),
            # what the starting weights have seen, theirs included: never validated on here
            'train_episode_ids': [*(info.get('train_episode_ids') or ()),
                                  *(info.get('init_train_episode_ids') or ())]}
    return model.train(), encoder, base


def _data_robot_erased(by_folder: Sequence[Sequence[LabelledEpisode]]) -> bool:
    """Whether the training frames have the robot taken out (``synth/erase.py``).

    The checkpoint records it, and the reward side refuses to feed the network the other kind
    of frame, so the data must be all one kind.

    Raises:
        ValueError: erased and picture episodes mixed.
    """
    kinds = Counter(bool(e.meta.get('robot_erased', False))
                    for episodes in by_folder for e in episodes)
    if len(kinds) > 1:
        raise ValueError(f'{kinds[True]} episodes have the robot erased and {kinds[False]} do '
                         'not: train on one kind, each in its own run (synthetic data: sole-r1 '
                         'synth --erase-robot-of every folder, or none; recordings: score-bag '
                         '--erased-labelled-out writes the erased copy to its own folder, '
                         'for its own train compact)')
    return next(iter(kinds))


def _check_start_kind(base: dict[str, Any] | None, robot_erased: bool) -> None:
    """Refuse a start checkpoint trained on the other kind of frame than the data.

    Raises:
        ValueError: it was, with the fix.
    """
    if base is not None and base['robot_erased'] != robot_erased:
        raise ValueError(f"the start checkpoint {base['checkpoint']} was trained on "
                         f"{_kind(base['robot_erased'])} but the data are "
                         f'{_kind(robot_erased)}: start from a file of their kind (--init '
                         f"{SHIPPED} picks the package's own file of the data's kind)")


def _kind(robot_erased: bool) -> str:
    return 'frames with the robot erased' if robot_erased else 'pictures (robot in view)'


def _load(folders: Sequence[str], config: TrainConfig, size: int
          ) -> list[list[LabelledEpisode]]:
    """Each folder's episodes of at least 2 frames, shrunk to ``size`` as they are read."""
    excluded = set(config.exclude_tasks)
    fit = functools.partial(_fit_frame, size=size)
    episodes = [[shrink(e, size) for e in labelled.iter_episodes(
        folder, tasks=config.tasks or None, video_transform=fit, exclude_tasks=excluded)
        if e.num_frames >= 2] for folder in folders]
    if not any(episodes):
        raise ValueError(f'no labelled episodes with at least 2 frames in {list(folders)} '
                         f'(tasks {list(config.tasks) or "all"}, excluding '
                         f'{sorted(excluded)})')
    return _without_copies(episodes, folders)


def _without_copies(by_folder: list[list[LabelledEpisode]], folders: Sequence[str]
                    ) -> list[list[LabelledEpisode]]:
    """Each episode found in an earlier folder left out of the later ones.

    The same recording in two ``--data`` folders (a copy, links, one scoring kept twice)
    could validate in one and train in the other, flattering the validation the weights are
    chosen on. Within a folder nothing is dropped: synthetic data holds a few identical
    episodes (a variation drawn twice), and ``make compact-model``'s recipe counts them.
    """
    seen: dict[bytes, str] = {}
    copies: list[str] = []
    kept = []
    for folder, episodes in zip(folders, by_folder):
        keys = [_content_key(episode) for episode in episodes]
        kept.append([e for e, key in zip(episodes, keys) if key not in seen])
        copies += [f'{folder}: {e.episode_id} (= {seen[key]})'
                   for e, key in zip(episodes, keys) if key in seen]
        for episode, key in zip(episodes, keys):
            seen.setdefault(key, f'{folder}: {episode.episode_id}')
    if copies:
        logger.warning('%d episode(s) also found in an earlier --data folder, used there '
                       'only: %s%s', len(copies), '; '.join(copies[:5]),
                       ' ...' if len(copies) > 5 else '')
    return kept


def _content_key(episode: LabelledEpisode) -> bytes:
    """The episode's task, labels and first, middle and last frames, hashed."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(episode.task_id.encode())
    digest.update(np.asarray(episode.progress, np.float64).tobytes())
    for index in sorted({0, episode.num_frames // 2, episode.num_frames - 1}):
        digest.update(np.ascontiguousarray(episode.external[index]).tobytes())
    return digest.digest()


def _optimise(model: CompactProgressNet, sampler: QuerySampler,
              val_queries: ValidationSet | None,
              config: TrainConfig, frames: int, folders: int,
              on_step: Callable[[int, float, dict[str, float] | None, float], None] | None
              ) -> dict[str, Any]:
    adversary = _scene_adversary(model, sampler, config)
    parameters = list(model.parameters())
    if adversary is not None:
        parameters += list(adversary.parameters())
    optimiser = torch.optim.AdamW(parameters, lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    budget_s = config.minutes * 60.0
    max_steps = math.inf if config.epochs is None else math.ceil(
        config.epochs * frames / config.batch_size)
    generator = torch.Generator().manual_seed(config.seed + 1)
    start = last_eval = time.perf_counter()
    best: dict[str, Any] = {'val': None, 'state': None, 'step': 0}
    step, losses, adversary_losses, history = 0, [], [], []
    interrupted = False
    while True:
        elapsed = time.perf_counter() - start
        if elapsed >= budget_s or step >= max_steps:
            break
        try:
            step = _one_step(model, adversary, sampler, optimiser, config, step, max_steps,
                             elapsed / budget_s, generator, losses, adversary_losses)
            metrics = None
            if (step % config.eval_every_steps == 0 if config.eval_every_steps
                    else time.perf_counter() - last_eval >= config.eval_every_s):
                metrics = _validate(model, val_queries, step, losses, best, history, config,
                                    folders, adversary_losses)
                last_eval = time.perf_counter()
            if on_step is not None:
                on_step(step, losses[-1], metrics,
                        run_share(step, max_steps, time.perf_counter() - start, config.minutes))
        except KeyboardInterrupt:   # Ctrl-C: the run ends as if its time were up, and the
            interrupted = True      # best weights so far are saved (they were all lost)
            break
    _validate(model, val_queries, step, losses, best, history, config, folders,
              adversary_losses)
    if adversary is not None:
        adversary.detach()
    if on_step is not None:
        on_step(step, losses[-1] if losses else float('nan'), history[-1], 1.0)
    seconds = time.perf_counter() - start
    return {'steps': step, 'samples': step * config.batch_size, 'train_seconds': seconds,
            # the time budget ended it before the steps of its epochs (the schedule unfinished)
            'epochs_cut_short': config.epochs is not None and step < max_steps,
            'interrupted': interrupted,
            'samples_per_s': step * config.batch_size / max(seconds, 1e-9),
            'best_step': best['step'], 'best_val': best['val'], 'history': history,
            '_best_state': best['state']}


def _one_step(model: CompactProgressNet, adversary, sampler: QuerySampler, optimiser,
              config: TrainConfig, step: int, max_steps: float, time_done: float,
              generator: torch.Generator, losses: list, adversary_losses: list) -> int:
    """One optimiser step on a fresh batch; returns the new step count."""
    # With epochs the schedule follows the steps alone, so a run does not depend on how
    # busy the machine is (the time budget then only caps it); without, it follows time.
    done = step / max_steps if config.epochs is not None else time_done
    cosine = 0.5 * (1.0 + math.cos(math.pi * done))
    for group in optimiser.param_groups:
        group['lr'] = config.learning_rate * (0.05 + 0.95 * cosine)
    batch = sampler.sample(config.batch_size)
    views = _brighten(random_shift(batch.views, config.shift_px, generator),
                      config.brightness, generator)
    prediction = model(views, batch.goal, batch.previous, batch.has_wrist)
    loss = F.smooth_l1_loss(prediction / 100.0, batch.target / 100.0, beta=0.05)
    optimiser.zero_grad(set_to_none=True)
    if adversary is None:
        loss.backward()
    else:
        adversary_loss = adversary.loss(batch.scene)
        (loss + config.scene_adversarial * adversary_loss).backward()
        adversary_losses.append(adversary_loss.item())
    optimiser.step()
    losses.append(loss.item())
    return step + 1


def _scene_adversary(model: CompactProgressNet, sampler: QuerySampler, config: TrainConfig
                     ) -> SceneAdversary | None:
    """The scene adversary of ``config.scene_adversarial``, or None when it is off.

    Raises:
        ValueError: it is on but the training episodes come from fewer than 2 scenes.
    """
    if config.scene_adversarial <= 0:
        return None
    names = sampler.bank.scene_names
    logger.info('scene adversary over %d scenes, weight %g', len(names),
                config.scene_adversarial)
    return SceneAdversary(model, len(names))


def _brighten(views: torch.Tensor, amount: float, generator: torch.Generator
              ) -> torch.Tensor:
    """Float views in [0, 1], each sample scaled by a random factor in [1 - amount, 1 + amount]."""
    scale = 1.0 + amount * (2 * torch.rand(views.shape[0], generator=generator) - 1)
    views = views.float() / 255.0
    if amount <= 0:
        return views
    return (views * scale.view(-1, *([1] * (views.dim() - 1)))).clamp(0.0, 1.0)


def _validate(model: CompactProgressNet, val_queries: ValidationSet | None, step: int,
              losses: list[float], best: dict[str, Any], history: list[dict],
              config: TrainConfig, folders: int, adversary_losses: Sequence[float] = ()
              ) -> dict:
    metrics = {'step': step, 'train_loss': float(np.mean(losses[-200:])) if losses else 0.0}
    if adversary_losses:
        # ln(scenes) is chance: the features name the scene no better than a guess.
        metrics['scene_adversary_loss'] = float(np.mean(adversary_losses[-200:]))
    if val_queries is not None:
        metrics.update({f'val_{k}': v for k, v in evaluate(
            model, val_queries, folders=folders).items()})
        if config.data_shares:
            metrics['val_weighted_mae'] = weighted_mae(metrics, config.data_shares)
        if config.keep_by == 'chained':
            metrics.update({f'val_chained_{k}': v for k, v in evaluate_chained(
                model, val_queries, num_queries=CHAINED_QUERIES).items()})
    history.append(metrics)
    # The best weights by MAE: of the model's own chains, or quoting the labels with each
    # folder weighed by its share where shares are given. Without validation data the latest
    # weights are kept.
    # With shares, the labels' MAE weighed by them: the chained MAE pools every episode, and a
    # user's few recordings would be drowned by the synthetic ones they were given shares beside.
    key = ('val_weighted_mae' if config.data_shares else
           'val_chained_mae' if config.keep_by == 'chained' else 'val_mae')
    if best['val'] is None or key not in metrics or metrics[key] <= best['val'][key]:
        best.update(val=metrics, step=step, state={k: v.detach().clone()
                                                   for k, v in model.state_dict().items()})
    logger.info('step %d: %s', step, {k: round(v, 4) for k, v in metrics.items()})
    return metrics


def weighted_mae(metrics: dict[str, float], shares: Sequence[float]) -> float:
    """Mean of the folders' validation MAEs weighted by their shares (those that validate)."""
    pairs = [(share, metrics[f'val_mae_folder{i + 1}']) for i, share in enumerate(shares)
             if f'val_mae_folder{i + 1}' in metrics]
    if len(shares) == 1 or not pairs or sum(share for share, _ in pairs) <= 0:
        return metrics['val_mae']
    return sum(share * mae for share, mae in pairs) / sum(share for share, _ in pairs)


def _config_json(config: TrainConfig) -> dict[str, Any]:
    from sole_r1_ros.configuration import to_flat_dict

    return to_flat_dict(config)

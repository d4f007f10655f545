"""Read a ``sole-r1 synth --export-sole-r1`` folder as training examples.

That export (``synth/FORMAT.md``) writes ``export.json`` + ``examples.jsonl`` + the composite
PNGs *after* the final resize, with grounded reasoning written from simulator state. Each line
becomes a ``TrainingExample`` whose reasoning is the export's ``<think>`` text; its stored chat
and completion are checked against ``reward.protocol`` and the label, so a drifted export fails
here instead of training another prompt.
"""
import json
import os
import re
from typing import Any

from sole_r1_ros.finetune.examples import check_images, TrainingExample
from sole_r1_ros.finetune.targets import target_text
from sole_r1_ros.reward import protocol

HEADER = 'export.json'
EXAMPLES = 'examples.jsonl'
FORMAT_NAME = 'sole_r1_sft'
FORMAT_VERSION = 1
_THINK = re.compile(r'<think>(.*)</think>', re.DOTALL)


def is_synth_export(root: str) -> bool:
    return os.path.isfile(os.path.join(root, HEADER))


def _example(record: dict[str, Any], where: str) -> TrainingExample:
    try:
        goal = protocol.normalize_goal(record['goal'])
        example = TrainingExample(
            example_id=record['id'], episode_id=record['episode_id'], step=record['frame'],
            previous_step=record['previous_frame'], image=record['images'][0], goal=goal,
            previous_progress=record['previous_progress'], progress=record['progress'],
            reasoning=_reasoning(record['completion'], where))
    except (KeyError, IndexError, TypeError) as exc:
        raise ValueError(f'{where}: malformed synth export record: {exc!r}') from exc
    if record['completion'] != target_text(example.reasoning or '', example.progress):
        raise ValueError(f'{where}: completion does not end in the label '
                         f'<answer>{example.progress}%</answer>')
    if record.get('messages', [])[:2] != example.messages():
        raise ValueError(f'{where}: stored prompt differs from reward.protocol.build_messages')
    return example


def _reasoning(completion: str, where: str) -> str:
    match = _THINK.search(completion)
    if not match or not match.group(1).strip():
        raise ValueError(f'{where}: completion has no <think> reasoning')
    return match.group(1).strip()


def read_synth_export(root: str) -> list[TrainingExample]:
    """Load every example of a synth export folder.

    Raises:
        FileNotFoundError: no export at ``root``.
        ValueError: another format or version, or a malformed / drifted record.
    """
    if not is_synth_export(root):
        raise FileNotFoundError(f'no {HEADER} in {root!r}: not a synth export')
    with open(os.path.join(root, HEADER), encoding='utf-8') as stream:
        header = json.load(stream)
    if header.get('format') != FORMAT_NAME or header.get('version', 0) > FORMAT_VERSION:
        raise ValueError(f'{root}/{HEADER}: format {header.get("format")!r} version '
                         f'{header.get("version")} is not {FORMAT_NAME} <= {FORMAT_VERSION}')
    examples = []
    with open(os.path.join(root, EXAMPLES), encoding='utf-8') as stream:
        for number, line in enumerate(stream, 1):
            if line.strip():
                examples.append(_example(json.loads(line), f'{EXAMPLES} line {number}'))
    check_images(root, examples)
    return examples

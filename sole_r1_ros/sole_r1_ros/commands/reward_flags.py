"""The reward-model flags of ``score``, ``score-bag`` and ``eval reward``.

Also the one place that turns them into a ``RewardConfig`` (through
``configuration.from_mapping``, so every default, range and help text is ``RewardConfig``'s
own).
"""
import argparse
import math
import os
import sys
import tempfile
from typing import Any

import numpy as np

from sole_r1_ros.configuration import from_mapping, specs
from sole_r1_ros.reward import (
    available_backends, BackendError, make_backend, RewardConfig, RewardEngine)

# flag -> RewardConfig field (dotted for nested configs).
_FLAGS = {'backend': 'backend', 'model': 'model', 'erased_model': 'erased_model',
          'pair_join': 'pair_join',
          'base_url': 'openai.base_url',
          'device': 'transformers.device', 'temperature': 'temperature', 'seed': 'seed',
          'max_new_tokens': 'max_new_tokens', 'timeout': 'timeout_s',
          'batch_size': 'max_batch_size', 'wait_for_server': 'openai.health_check_s'}
_SPECS = {spec.name: spec for spec in specs(RewardConfig)}


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f'must be a finite number, got {text!r}')
    return value


def warn_unknown_tasks(roots: list[str], names: list[str] | None) -> None:
    """Say on stderr which of the task ``names`` (``--tasks``, parsed) no episode has."""
    from sole_r1_ros.labelled.folder import unknown_tasks

    missing = unknown_tasks(roots, names or [])
    if missing:
        print(f'warning: no episode in {", ".join(roots)} has the task {", ".join(missing)} '
              '(a typo?); it selects nothing', file=sys.stderr)


def positive_int(text: str) -> int:
    """An argparse type: an integer of 1 or more (0 queries or a stride of 0 means nothing)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be 1 or more, got {text!r}')
    return value


def _help(field: str, extra: str = '') -> str:
    spec = _SPECS[field]
    return f'{spec.describe()}{extra} (default: {spec.default!r})'


_MODEL_BACKENDS = ("'transformers' (a local SOLE-R1 checkpoint), 'openai' (vllm serve) or "
                   "'compact' (the CPU model shipped with the package)")


def add_reward_arguments(parser: argparse.ArgumentParser, backend: bool = True,
                         oracle: str = '') -> None:
    """Add the reward-model flags with RewardConfig's defaults (``backend``: also --backend).

    ``oracle``: also offer ``--backend oracle``, described by this text (where its truth comes
    from); without it the oracle is neither offered nor mentioned.
    """
    if backend:
        parser.add_argument('--backend', default=RewardConfig.backend,
                            choices=[b for b in available_backends() if oracle or b != 'oracle'],
                            help=_MODEL_BACKENDS + (f"; 'oracle': {oracle}" if oracle else ''))
    parser.add_argument('--model', default=RewardConfig.model, help=_help('model'))
    parser.add_argument('--erased-model', default=RewardConfig.erased_model, metavar='FILE',
                        help=_help('erased_model'))
    parser.add_argument('--pair-join', default=RewardConfig.pair_join,
                        choices=_SPECS['pair_join'].choices, help=_help('pair_join'))
    parser.add_argument('--base-url', default=_SPECS['openai.base_url'].default,
                        help=_help('openai.base_url', ' (--backend openai)'))
    # A dead server was waited on for the whole 600 s, whatever --timeout said (that is per
    # request): a server known to be up needs no wait, a typo in --base-url a short one.
    parser.add_argument('--wait-for-server', type=_finite, metavar='S',
                        default=_SPECS['openai.health_check_s'].default,
                        help=_help('openai.health_check_s', ' (--backend openai)'))
    parser.add_argument('--device', default=_SPECS['transformers.device'].default,
                        help=_help('transformers.device', ' (--backend transformers)'))
    parser.add_argument('--temperature', type=_finite, default=RewardConfig.temperature,
                        help=_help('temperature', '; pass --temperature 0 for deterministic '
                                   'evaluation'))
    parser.add_argument('--seed', type=int, default=RewardConfig.seed, help=_help('seed'))
    parser.add_argument('--max-new-tokens', type=int, default=RewardConfig.max_new_tokens,
                        help=_help('max_new_tokens'))
    parser.add_argument('--timeout', type=_finite, default=RewardConfig.timeout_s, metavar='S',
                        help=_help('timeout_s'))
    parser.add_argument('--batch-size', type=int, default=RewardConfig.max_batch_size,
                        help=_help('max_batch_size'))
    parser.add_argument('--max-failed', type=_finite, default=0.0, metavar='FRACTION',
                        help='exit 1 (after writing the results) when more than this share of '
                             'queries failed: timeouts, HTTP or backend errors (default 0: any)')


def add_labelled_out(parser: argparse.ArgumentParser, what: str) -> None:
    """--labelled-out DIR: the scored frames and their progress as labelled episodes."""
    parser.add_argument('--labelled-out', metavar='DIR',
                        help=f'also write {what} with the per-frame progress as labelled '
                             'episodes (DIR/episodes/<id>/), to distil into the compact model '
                             'with sole-r1 train compact --data DIR')


def reward_config(args: argparse.Namespace) -> RewardConfig:
    """The ``RewardConfig`` the flags describe.

    Raises:
        ValueError: a value out of its range (naming the field and its meaning).
    """
    return from_mapping(RewardConfig, {field: getattr(args, flag)
                                       for flag, field in _FLAGS.items()})


def make_engine(config: RewardConfig) -> RewardEngine:
    """Build the reward engine of ``config``.

    Raises:
        ValueError: the backend cannot start; the message gives the reason (the CLI prints it
            as one line).
    """
    try:
        return RewardEngine(make_backend(config), config)
    except (BackendError, ImportError) as exc:
        raise ValueError(f'cannot start the {config.backend} backend: {exc}') from exc


def check_writable(*paths: str | None) -> None:
    """Make each output's folder and check it can be written, before any work is done.

    Raises:
        ValueError: a path that is a folder, or whose folder cannot be made or written.
    """
    for path in paths:
        if not path:
            continue
        folder = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise ValueError(f'cannot write {path}: {exc.strerror}') from exc
        if os.path.isdir(path):
            raise ValueError(f'cannot write {path}: it is a folder')
        _probe(folder, path)


def check_writable_folder(*folders: str | None) -> None:
    """Make each output folder and check it can be written, before any work is done.

    Raises:
        ValueError: a path that is a file, or a folder that cannot be made or written.
    """
    for folder in folders:
        if not folder:
            continue
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise ValueError(f'cannot write to {folder}: {exc.strerror}') from exc
        _probe(folder, folder)


def _probe(folder: str, named: str) -> None:
    # Creating a file is the only test that also catches read-only file systems (and that
    # root's permission checks do not pass by default).
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ValueError(f'cannot write {named}: {exc.strerror}') from exc


def exit_code(command: str, errors: list[Any], total: int, args: argparse.Namespace) -> int:
    """Return 0, or 1 when more than ``--max-failed`` of the queries failed.

    In that case it first says on stderr how many failed (the results are written first, so
    they say which).
    """
    failed = failure_summary(errors, total, args.max_failed)
    if failed is None:
        return 0
    where = f' (the results in {args.out} say which)' if getattr(args, 'out', None) else ''
    print(f'sole-r1 {command}: {failed}; more than --max-failed {args.max_failed:g} of them'
          f'{where}', file=sys.stderr)
    return 1


def failure_summary(errors: list[Any], total: int, limit: float) -> str | None:
    """A one-line message when more than ``limit`` (a fraction) of ``total`` queries failed.

    >>> failure_summary(['timeout', 'timeout'], 4, 0.25)
    '2 of 4 queries failed (timeout x2)'
    >>> failure_summary(['timeout'], 4, 0.25) is None
    True
    """
    if not errors or len(errors) <= limit * total:
        return None
    kinds: dict[str, int] = {}
    for error in errors:
        text = str(error).splitlines()[0][:80]
        kinds[text] = kinds.get(text, 0) + 1
    causes = ', '.join(f'{k} x{n}' for k, n in sorted(kinds.items(), key=lambda x: -x[1])[:3])
    return f'{len(errors)} of {total} queries failed ({causes})'


def answered_curve(num_frames: int, answers) -> tuple[np.ndarray, int]:
    """Per-frame progress from the model's valid answers; (curve, answers left out).

    Frame 0 is 0 % (the protocol's reference); between answers the curve is linear, after the
    last it holds. An invalid answer (unparseable: the engine carries the previous progress
    forward) is no measurement, so it is left out and the curve runs across it; as a label it
    would teach a distilled model a flat stretch the teacher never saw.
    """
    valid = [a for a in answers if a.valid]
    curve = np.interp(np.arange(num_frames), [0] + [a.step for a in valid],
                      [0.0] + [float(a.progress) for a in valid])
    return curve, len(answers) - len(valid)


def say_left_out(command: str, what: str, invalid: int, total: int, folder: str) -> bool:
    """Say what unparseable answers did to the labels; False when nothing can be written."""
    if invalid == total:
        print(f'sole-r1 {command}: {what}: none of its {total} answers could be read: not '
              f'written to {folder}', file=sys.stderr)
        return False
    if invalid:
        print(f'sole-r1 {command}: {what}: {invalid} of {total} answers could not be read and '
              'are left out of its labels (interpolated across)', file=sys.stderr)
    return True

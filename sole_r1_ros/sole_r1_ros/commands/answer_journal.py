"""The answers of a long scoring, kept as they come: a rerun after Ctrl-C or a crash asks the rest.

``sole-r1 score-bag`` asks one query per episode per round, so no episode is finished before
the last round, and an interrupted run of SOLE-R1 on a long recording lost every answer.
The journal is a JSON-lines file beside ``--out``: a header naming the scoring (bag, goal,
query steps, reward), then one line per answered query. A rerun of the same scoring takes
them (``score_episodes(answered=...)``); another scoring refuses it rather than mixing answers.
"""
import dataclasses
import hashlib
import json
import os
from pathlib import Path
import sys
from typing import Any, Callable, Iterable

from sole_r1_ros.line_file import LineFile
from sole_r1_ros.reward.query import ProgressResult


# How answers are fetched, not what they are: a resume against the same model served on another
# port, or with another timeout, was refused as another scoring.
_TRANSPORT = {
    '': ('timeout_s', 'max_batch_size', 'concurrent_calls'),
    'transformers': ('device', 'warmup', 'batch_buckets', 'prompt_pad_multiple', 'static_cache',
                     'compile'),
    'openai': ('base_url', 'api_key_env', 'max_concurrency', 'request_timeout_s', 'max_retries',
               'retry_backoff_s', 'health_check_s', 'health_retry_s', 'health_retry_max_s',
               'health_report_s')}


def config_digest(config: Any) -> str:
    """A short digest of what in a reward config makes the answers: model, sampling, prompt.

    Where and how they are fetched (the server's address, timeouts, batching) is left out.
    """
    values = dataclasses.asdict(config)
    for section, names in _TRANSPORT.items():
        part = values.get(section, {}) if section else values
        for name in names:
            part.pop(name, None)
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


class AnswerJournal:
    """Answers by (episode id, step), appended and flushed as they come."""

    def __init__(self, path: str | os.PathLike, header: dict[str, Any]) -> None:
        self.path = Path(path)
        # as it reads back: tuples are lists, numpy numbers plain ones
        self._header = json.loads(json.dumps(header, default=_plain))
        self._known: dict[tuple[str, int], ProgressResult] = {}
        self._lines: LineFile | None = None

    def load(self) -> dict[tuple[str, int], ProgressResult]:
        """The answers an interrupted run of this scoring left; {} if none.

        Raises:
            ValueError: the journal is of another scoring (bag, goal, steps or reward).
        """
        if not self.path.exists():
            return {}
        with open(self.path, encoding='utf-8') as stream:
            lines = stream.read().splitlines()
        try:
            header = json.loads(lines[0]) if lines else None
        except ValueError:
            header = None
        if header != {'journal': self._header}:
            raise ValueError(f'{self.path} holds the answers of another scoring (another bag, '
                             'goal, query steps or reward settings): delete it to start over, '
                             'or give another --out')
        names = {f.name for f in dataclasses.fields(ProgressResult)}
        for line in lines[1:]:
            try:
                fields = json.loads(line)
                result = ProgressResult(**{k: v for k, v in fields.items() if k in names})
            except (ValueError, TypeError):
                continue   # the line a kill tore
            self._known[(result.episode_id, result.step)] = result
        return dict(self._known)

    def resume(self, command: str, total: int) -> dict[tuple[str, int], ProgressResult]:
        """``load``, saying on stderr how many of ``total`` answers a rerun takes from it."""
        answered = self.load()
        if answered:
            print(f'sole-r1 {command}: {len(answered)} of {total} answers from an interrupted '
                  f'run of this scoring ({self.path}): only the rest are asked', file=sys.stderr)
        return answered

    def progress(self, bar) -> Callable[[list[ProgressResult]], None]:
        """An ``on_batch`` for ``score_episodes``: keep each round's answers, move ``bar``."""
        def on_batch(batch: list[ProgressResult]) -> None:
            self.append(batch)
            bar.update(len(batch))
        return on_batch

    def append(self, results: Iterable[ProgressResult]) -> None:
        """Keep the new answers (failed ones are asked again by a rerun)."""
        new = [r for r in results
               if r.error is None and (r.episode_id, r.step) not in self._known]
        if not new:
            return
        if self._lines is None:   # after a torn line, on a line of its own (LineFile)
            fresh = not self.path.exists() or self.path.stat().st_size == 0
            self._lines = LineFile(self.path)
            if fresh:
                self._lines.write(json.dumps({'journal': self._header}) + '\n')
        for result in new:
            self._known[(result.episode_id, result.step)] = result
        self._lines.write(''.join(json.dumps(dataclasses.asdict(r), default=_plain) + '\n'
                                  for r in new))

    def finish(self, command: str, results: Iterable[ProgressResult]) -> None:
        """The outputs are written: remove the journal, or keep it while queries failed.

        A server that went down (the case the journal is for) does not crash the command:
        it ends with failed queries, and the journal went with it.
        """
        failed = sum(r.error is not None for r in results)
        if not failed:
            self.remove()
            return
        if self._lines is not None:
            self._lines.close()
            self._lines = None
        print(f'sole-r1 {command}: {failed} queries failed; the answers that came are kept in '
              f'{self.path}: the same command again asks only the rest', file=sys.stderr)

    def remove(self) -> None:
        """The scoring is written whole: the journal goes."""
        if self._lines is not None:
            self._lines.close()
            self._lines = None
        self.path.unlink(missing_ok=True)


def _plain(value: Any) -> Any:
    """A numpy number as a Python one (json's ``default``)."""
    if hasattr(value, 'item'):
        return value.item()
    raise TypeError(f'{type(value).__name__} is not JSON')

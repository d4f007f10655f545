"""Atomic checkpoints of the learner, keeping the last K.

A checkpoint holds the agent (networks, optimisers, RNG), the replay buffer (frames, images,
labels, the queue of early labels) and the loop counters.

Layout of ``<dir>/ckpt-00000042/``: ``agent.pt`` (``torch.save`` of tensors and plain Python,
read back with ``weights_only=True``), ``replay.npz`` (``np.savez``, no pickle: the buffer but
its images), ``meta.json`` (counters, replay metadata) and ``manifest.json`` (size and SHA-256
of the three others and of the image segments the checkpoint names). A checkpoint is written
into a temporary directory beside the final one, every file and the directory are fsynced, and
one ``os.rename`` publishes it, so a crash leaves either the complete checkpoint or an ignored
temporary directory. One writer per directory.

The images, nearly all of a checkpoint's bytes, are segments of the buffer
(``ReplayBuffer.checkpoint_state``) in ``<dir>/replay-segments/``, shared by the checkpoints that
name them: a checkpoint writes the segments written to since the last one (a minute of frames:
two or three of 25 MB), not the whole buffer (2.5 GB when full) as format 1 did, and holds the
learner's lock only to copy those. A segment is deleted once no checkpoint names it. Format-1
checkpoints (every image in ``replay.npz``) still load.
"""
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
import hashlib
import json
import logging
import os
from pathlib import Path
import pickle
import re
import shutil
from typing import Any, TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sole_r1_ros.rl.drq import DrQAgent
    from sole_r1_ros.rl.replay import ReplayBuffer

_LOG = logging.getLogger(__name__)

FORMAT_VERSION = 2   # 2: images in shared segments; 1: every image in replay.npz
_READABLE_FORMATS = (1, 2)
_SEGMENTS = 'replay-segments'
_SEGMENT_TMP = '.tmp-'
_UNREADABLE = '.unreadable'
_NAME = re.compile(r'^ckpt-(\d{8})$')
_TMP_PREFIX = '.tmp-ckpt-'
_DELETING_PREFIX = '.deleting-ckpt-'   # renamed so, then deleted: a kill leaves no half
_FULL_BYTES = 64 << 20   # a torch write failing with less free than this: a full disk
_FILES = ('agent.pt', 'replay.npz', 'meta.json')
_MANIFEST = 'manifest.json'


class CheckpointError(RuntimeError):
    """No valid checkpoint could be read (the cause is chained)."""


def lock_directory(directory: str | os.PathLike):
    """Hold the one-writer lock of a checkpoint directory; returns the open lock file.

    Two learners on one directory deleted each other's half-written checkpoints and rotated
    away each other's finished ones. The lock lives as long as the returned file stays open
    (closing it, or the process ending, a kill included, releases it).

    Raises:
        CheckpointError: another process holds it.
    """
    from sole_r1_ros.file_lock import try_lock

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    handle = try_lock(root / '.lock', f'pid {os.getpid()}\n')
    if isinstance(handle, str):
        raise CheckpointError(f'{root} is in use by another learner ({handle}): two would '
                              "delete each other's checkpoints; stop it, or choose another "
                              'run_dir')
    return handle


@dataclass
class Checkpoint:
    """A checkpoint's content; ``restore`` puts it into an agent and a buffer.

    Read and verified from ``path``, or a ``snapshot`` in memory (``path`` None).
    """

    path: Path | None
    agent_state: dict[str, Any]
    replay_arrays: dict[str, np.ndarray]
    replay_meta: dict[str, Any]
    counters: dict[str, Any]
    # image segments by file name: a snapshot's are the new ones (the rest are on disk); a read
    # checkpoint's are all it names, each read from disk when asked for
    replay_segments: Mapping[str, np.ndarray] = field(default_factory=dict)
    # a snapshot's: what ReplayBuffer.mark_saved takes once it is written
    replay_written: np.ndarray | None = None
    # a snapshot's: the manifest entries (size, SHA-256) of the segments it names, not carries
    replay_saved: Mapping[str, Any] = field(default_factory=dict)
    # a read checkpoint's image segments that are missing or damaged on disk (name -> why),
    # loaded only with ``evict_damaged``: ``restore`` drops their frames from the buffer
    damaged_segments: Mapping[str, str] = field(default_factory=dict)
    # set by ``restore``: the frames those segments held, dropped
    evicted_frames: int = 0


def recheck_segments(directory: str | os.PathLike, saved: Mapping[str, Any], count: int,
                     start: int) -> tuple[dict[str, Any], int]:
    """Check ``count`` saved segments' SHA-256, round robin from ``start``; drop the bad ones.

    The checkpoints share one copy of each image segment: one damaged on disk (a flipped bit
    keeps its size) would be named by every checkpoint to come. Dropped from ``saved``, it is
    copied from the buffer, which still holds it, and written again.

    Returns:
        ``saved`` without the damaged segments, and the next ``start``.
    """
    names = sorted(saved)
    good = dict(saved)
    for index in range(min(count, len(names))):
        name = names[(start + index) % len(names)]
        if _sha256(Path(directory) / _SEGMENTS / name) != saved[name].get('sha256'):
            _LOG.warning('image segment %s fails its SHA-256 checksum: written again from the '
                         'replay buffer', name)
            del good[name]
    return good, (start + count) % max(1, len(names))


def snapshot(agent: 'DrQAgent', replay: 'ReplayBuffer', counters: Mapping[str, Any],
             saved: Mapping[str, Any] | None = None) -> Checkpoint:
    """Copy what a checkpoint holds, in memory: quick, so callers may hold their locks.

    Args:
        agent: its networks, optimisers and counters are copied.
        replay: its state, and the image segments not in ``saved``, are copied.
        counters: the caller's loop state, kept as given.
        saved: image segments already on disk (``saved_segments``): not copied again.
    """
    saved = dict(saved or {})
    arrays, replay_meta, segments, written = replay.checkpoint_state(saved)
    return Checkpoint(path=None, agent_state=agent.state_dict(), replay_arrays=arrays,
                      replay_meta=replay_meta, counters=dict(counters), replay_segments=segments,
                      replay_written=written, replay_saved=saved)


def saved_segments(directory: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The image segments published checkpoints name and the disk holds: name -> size, SHA-256.

    A segment file no published checkpoint names (a write cut short) is not counted: its
    content was never checked.
    """
    root = Path(directory)
    found: dict[str, dict[str, Any]] = {}
    for _, path in (_numbered(root) if root.is_dir() else []):
        try:
            entries = json.loads((path / _MANIFEST).read_text()).get('segments', {})
        except (OSError, ValueError, AttributeError):
            continue
        for name, entry in entries.items():
            if name in found:
                continue
            try:
                if (root / _SEGMENTS / name).stat().st_size == entry['size']:
                    found[name] = entry
            except (OSError, KeyError, TypeError):
                continue
    return found


def save_checkpoint(directory: str | os.PathLike, agent: 'DrQAgent', replay: 'ReplayBuffer',
                    counters: Mapping[str, Any], keep: int = 3) -> Path:
    """Write a new checkpoint atomically and retire all but the newest ``keep``.

    Args:
        counters: JSON-able loop state of the caller (env steps, learning steps, episodes, the
            next episode id, ...), returned unchanged by ``restore``.

    Returns:
        The directory of the new checkpoint.
    """
    state = snapshot(agent, replay, counters, saved_segments(directory))
    path = write_checkpoint(directory, state, keep)
    replay.mark_saved(state.replay_written)
    return path


def write_checkpoint(directory: str | os.PathLike, state: Checkpoint, keep: int = 3) -> Path:
    """Write a ``snapshot`` atomically (the slow part: disk) and retire old checkpoints.

    A disk with room for the ``keep`` checkpoints but not one more never took another: on a
    full disk the oldest verified checkpoint (never the newest) is retired and the write tried
    once more.
    """
    import errno

    try:
        return _write_checkpoint(directory, state, keep)
    except OSError as exc:
        if exc.errno != errno.ENOSPC and 'No space left' not in str(exc):
            raise
        root = Path(directory)
        existing = _numbered(root)
        if len(existing) < 2:
            raise
        # Only where a newer checkpoint loads: retiring the oldest must not leave none.
        if not any(_verifies(path) for _, path in existing[:-1]):
            raise OSError(errno.ENOSPC, f'no space for a checkpoint, and {existing[-1][1].name} '
                          'is the only one that loads: kept; free some disk') from exc
        # Only where that makes room: while the replay fills, each checkpoint is larger than
        # the oldest, and a full disk retired one good checkpoint per try down to one.
        oldest, needed = existing[-1][1], _bytes_of(state)
        pinned = _carried_by_name(state)
        room = shutil.disk_usage(directory).free + _freed_by_retiring(root, oldest, pinned)
        if room < needed * 1.05:
            raise OSError(errno.ENOSPC, f'no space for a checkpoint of {needed / 1e9:.2f} GB: '
                          f'{room / 1e9:.2f} GB even with {oldest.name} retired; the '
                          f'{len(existing)} kept are left as they are') from exc
        _LOG.warning('no space for checkpoint %d: retiring %s first', existing[0][0] + 1,
                     oldest.name)
        _retire(oldest)
        _collect_segments(root, pinned)   # the segments it alone named: the room counted
        return _write_checkpoint(directory, state, keep)


def _bytes_of(state: Checkpoint) -> int:
    """About what a checkpoint of ``state`` takes on disk: its arrays and tensors."""
    def size(value) -> int:
        if isinstance(value, Mapping):
            return sum(size(v) for v in value.values())
        if isinstance(value, (list, tuple)):
            return sum(size(v) for v in value)
        nbytes = getattr(value, 'nbytes', None)   # numpy arrays, torch tensors
        return int(nbytes) if isinstance(nbytes, int) else 64
    return size(state.replay_arrays) + size(state.agent_state) + size(state.replay_segments)


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob('*') if f.is_file())


def _verifies(path: Path) -> bool:
    try:
        verify_checkpoint(path)
    except CheckpointError:
        return False
    return True


def _carried_by_name(state: Checkpoint) -> set[str]:
    """The segments a snapshot names but does not carry: on disk, and needed as they are."""
    files = state.replay_meta.get('image_segments') or {}
    return {name for view in files.values() for name in view} - set(state.replay_segments)


def _freed_by_retiring(root: Path, oldest: Path, pinned: set[str]) -> int:
    """What retiring ``oldest`` frees: its folder and the segments nothing else names."""
    named = _segments_named(root)
    if oldest not in named:
        return _folder_bytes(oldest)
    others = set().union(pinned, *(names for path, names in named.items() if path != oldest))
    alone = named[oldest] - others
    return _folder_bytes(oldest) + sum(
        (root / _SEGMENTS / name).stat().st_size for name in alone
        if (root / _SEGMENTS / name).is_file())


_SAID_UNNAMED: set[Path] = set()


def _segments_named(root: Path) -> dict[Path, set[str]]:
    """The segments each checkpoint folder names, unreadable ones set aside included.

    A folder whose list is in neither its manifest nor its meta.json names none: without
    meta.json it can never load, and keeping every segment for it filled the disk.
    """
    named: dict[Path, set[str]] = {}
    for path in root.iterdir():
        if not path.is_dir() or not (_NAME.match(path.name) or path.name.endswith(_UNREADABLE)):
            continue
        try:
            named[path] = set(json.loads((path / _MANIFEST).read_text()).get('segments', {}))
            continue
        except (OSError, ValueError, AttributeError):
            pass
        try:
            files = json.loads((path / 'meta.json').read_text())['replay'].get(
                'image_segments') or {}
            named[path] = {name for names in files.values() for name in names}
        except (OSError, ValueError, AttributeError, KeyError, TypeError):
            if path not in _SAID_UNNAMED:
                _SAID_UNNAMED.add(path)
                _LOG.warning('%s has no readable manifest.json or meta.json: it cannot load, '
                             'and keeps no image segment', path)
            named[path] = set()
    return named


def _collect_segments(root: Path, pinned: set[str] = frozenset()) -> None:
    """Delete the image segments no checkpoint names (retired ones', a cut-short write's).

    Args:
        root: the checkpoint directory.
        pinned: named by a snapshot being written, kept too.
    """
    store = root / _SEGMENTS
    if not store.is_dir():
        return
    keep = set().union(pinned, *_segments_named(root).values())
    for path in store.iterdir():
        if path.name not in keep:
            path.unlink(missing_ok=True)


def _write_segments(root: Path, state: Checkpoint, written: list[Path]
                    ) -> dict[str, dict[str, Any]]:
    """Write the snapshot's new image segments; returns every named segment's manifest entry.

    Each is written under a temporary name, fsynced and renamed; ``written`` collects the
    files, for the caller to delete if the checkpoint fails.
    """
    files = state.replay_meta.get('image_segments') or {}
    names = [name for view in files.values() for name in view]
    if not names:
        return {}
    store = root / _SEGMENTS
    store.mkdir(exist_ok=True)
    entries: dict[str, dict[str, Any]] = {}
    for name in names:
        if name in state.replay_segments:
            final, tmp = store / name, store / (_SEGMENT_TMP + name)
            with open(tmp, 'wb') as f:
                np.save(f, state.replay_segments[name], allow_pickle=False)
                _sync(f)
            os.replace(tmp, final)
            written.append(final)
            entries[name] = {'size': final.stat().st_size, 'sha256': _sha256(final)}
        elif name in state.replay_saved:
            entries[name] = state.replay_saved[name]
        else:
            raise CheckpointError(f'image segment {name} is neither in the snapshot nor on disk '
                                  f'in {store}')
    fsync_dir(store)
    return entries


def _write_checkpoint(directory: str | os.PathLike, state: Checkpoint, keep: int) -> Path:
    import errno

    import torch

    if keep < 1:
        raise ValueError(f'keep must be >= 1, got {keep}')
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    for stale in [*root.glob(_TMP_PREFIX + '*'), *root.glob(_DELETING_PREFIX + '*'),
                  *root.glob(f'{_SEGMENTS}/{_SEGMENT_TMP}*')]:
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    existing = _numbered(root)
    number = existing[0][0] + 1 if existing else 0
    final = root / f'ckpt-{number:08d}'
    tmp = root / f'{_TMP_PREFIX}{number:08d}-{os.getpid()}'
    tmp.mkdir()
    written: list[Path] = []
    try:
        segments = _write_segments(root, state, written)
        meta = {'format_version': FORMAT_VERSION, 'counters': state.counters,
                'replay': state.replay_meta}
        with open(tmp / 'agent.pt', 'wb') as f:
            try:
                torch.save(state.agent_state, f)
            except RuntimeError as exc:   # torch says a full disk so: callers catch OSError
                full = shutil.disk_usage(tmp).free < _FULL_BYTES
                raise OSError(errno.ENOSPC if full else errno.EIO,
                              f'writing {tmp / "agent.pt"} failed: {exc}') from exc
            _sync(f)
        with open(tmp / 'replay.npz', 'wb') as f:
            np.savez(f, **state.replay_arrays)
            _sync(f)
        write_synced_text(tmp / 'meta.json', json.dumps(meta))
        manifest: dict[str, Any] = {
            name: {'size': (tmp / name).stat().st_size, 'sha256': _sha256(tmp / name)}
            for name in _FILES}
        manifest['segments'] = segments
        write_synced_text(tmp / _MANIFEST, json.dumps(manifest, indent=1))
        fsync_dir(tmp)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for path in written:   # named by no checkpoint: room back on a full disk
            path.unlink(missing_ok=True)
        raise
    try:   # published: whatever fails now, its files stay
        fsync_dir(root)
    except OSError as exc:
        _LOG.warning('checkpoint %s is written, but syncing %s failed (%s): a power cut now '
                     'may lose it', final.name, root, exc)
    for _, old in _numbered(root)[keep:]:
        _retire(old)
    _collect_segments(root)
    _LOG.info('saved checkpoint %s (%s, %d new image segments)', final.name,
              _said(state.counters), len(state.replay_segments))
    return final


def _retire(path: Path) -> None:
    """Delete an old checkpoint that verifies; set an unreadable one aside, never delete it.

    An unreadable checkpoint may be the only copy of a run (a disk error, a bug): it is
    renamed ``<name>.unreadable`` so rotation stops counting it and a person can look.
    """
    try:   # its own files: the segments it shares stay until no checkpoint names them
        verify_checkpoint(path, segments=False)
    except CheckpointError as exc:
        aside = path.with_name(path.name + _UNREADABLE)
        _LOG.warning('keeping unreadable checkpoint as %s: %s', aside.name, exc)
        os.rename(path, aside)
        return
    # renamed first: a kill in the middle of the delete leaves a folder the next write sweeps,
    # not a half checkpoint set aside as unreadable for ever
    doomed = path.with_name(_DELETING_PREFIX + path.name)
    os.rename(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Return the published checkpoint directories, newest first (not yet verified)."""
    root = Path(directory)
    return [path for _, path in _numbered(root)] if root.is_dir() else []


def newest_counters(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The loop counters of the newest checkpoint that has readable ones (None: none has).

    Read from its meta.json alone, not verified: for a report of where a resume goes on.
    """
    for path in list_checkpoints(directory):
        try:
            return dict(json.loads((path / 'meta.json').read_text())['counters'])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def load_checkpoint(path: str | os.PathLike, evict_damaged: bool = False) -> Checkpoint:
    """Read and verify one checkpoint directory.

    Args:
        evict_damaged: load it even if some of its image segments are missing or damaged
            (``damaged_segments``): ``restore`` then drops their frames from the buffer. All of
            them gone is still an error (the segments folder was not copied, say).

    Raises:
        CheckpointError: a file is missing, truncated, fails its checksum or does not parse.
    """
    import torch

    path = Path(path)
    damaged: dict[str, str] = {}
    try:
        if evict_damaged:
            damaged = verify_resumable(path)
        else:
            verify_checkpoint(path)
        meta = json.loads((path / 'meta.json').read_text())
        if meta.get('format_version') not in _READABLE_FORMATS:
            raise CheckpointError(f'format version {meta.get("format_version")} is not one of '
                                  f'{_READABLE_FORMATS}')
        agent_state = torch.load(path / 'agent.pt', map_location='cpu', weights_only=True)
        with np.load(path / 'replay.npz', allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        files = meta['replay'].get('image_segments') or {}
        names = [name for view in files.values() for name in view]
        segments = _SegmentFiles(path.parent / _SEGMENTS,
                                 [name for name in names if name not in damaged])
    except CheckpointError as exc:
        raise CheckpointError(f'{path}: {exc}') from exc
    except (OSError, KeyError, TypeError, ValueError, RuntimeError,
            pickle.UnpicklingError) as exc:   # weights_only refusing an object in agent.pt
        raise CheckpointError(f'{path}: unreadable checkpoint ({exc})') from exc
    return Checkpoint(path=path, agent_state=agent_state, replay_arrays=arrays,
                      replay_meta=meta['replay'], counters=meta['counters'],
                      replay_segments=segments, damaged_segments=damaged)


class _SegmentFiles(Mapping):
    """A checkpoint's image segments by name, each read (memory-mapped) when asked for."""

    def __init__(self, store: Path, names: list[str]) -> None:
        self._store, self._names = store, dict.fromkeys(names)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._names:
            raise KeyError(name)
        return np.load(self._store / name, mmap_mode='r', allow_pickle=False)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def verify_checkpoint(path: str | os.PathLike, segments: bool = True) -> None:
    """Check every file of a checkpoint against its manifest (size, SHA-256), unparsed.

    Args:
        path: the checkpoint's directory.
        segments: also the image segments it names (all of the buffer's images: slow).

    Raises:
        CheckpointError: a file is missing, truncated or fails its checksum.
    """
    path = Path(path)
    try:
        manifest = json.loads((path / _MANIFEST).read_text())
        for name in _FILES:
            problem = _file_problem(name, path / name, manifest[name])
            if problem:
                raise CheckpointError(problem)
        if segments:
            for name, entry in manifest.get('segments', {}).items():
                problem = _file_problem(name, path.parent / _SEGMENTS / name, entry)
                if problem:
                    raise CheckpointError(problem)
    except (OSError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f'unreadable checkpoint ({exc})') from exc


def damaged_segments(path: str | os.PathLike) -> dict[str, str]:
    """The image segments a checkpoint names that are missing or fail their size or SHA-256.

    The checkpoints share one copy of each segment, so one damaged while no learner ran (a
    disk error, a file deleted by hand) makes every checkpoint naming it fail to verify; a
    resume can still load the newest with that segment's frames dropped.

    Returns:
        Each such segment's file name and what is wrong with it; empty when all verify.

    Raises:
        CheckpointError: the manifest is missing or does not parse.
    """
    path = Path(path)
    try:
        entries = _manifest_segments(path)
        damaged = {}
        for name, entry in entries.items():
            try:
                problem = _file_problem(name, path.parent / _SEGMENTS / name, entry)
            except OSError as exc:
                problem = f'{name} is unreadable ({exc})'
            if problem:
                damaged[name] = problem
        return damaged
    except (OSError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f'unreadable checkpoint ({exc})') from exc


def verify_resumable(path: str | os.PathLike) -> dict[str, str]:
    """Check what a load with ``evict_damaged`` needs; return the damaged image segments.

    Its own files must verify, and some of its image segments: with all of them missing or
    damaged there is no replay left to resume (a checkpoint copied without its segments, most
    likely), which is an error, not a run to go on with.

    Raises:
        CheckpointError: one of its own files fails, or every image segment does.
    """
    verify_checkpoint(path, segments=False)
    damaged = damaged_segments(path)
    if damaged and len(damaged) == len(_manifest_segments(Path(path))):
        raise CheckpointError(f'every image segment is missing or damaged: '
                              f'{next(iter(damaged.values()))}')
    return damaged


def _manifest_segments(path: Path) -> dict[str, Any]:
    return json.loads((path / _MANIFEST).read_text()).get('segments', {})


def _file_problem(name: str, file: Path, entry: Mapping[str, Any]) -> str | None:
    """What is wrong with one file of a checkpoint against its manifest entry, or None."""
    if not file.exists() and file.parent.name == _SEGMENTS:
        return (f"image segment {name} is missing from {file.parent}: the replay's images "
                'are kept there, shared by the checkpoints; copy that folder with a checkpoint')
    size = file.stat().st_size
    if size != entry['size']:
        return f'{name} has {size} bytes, manifest says {entry["size"]}'
    if _sha256(file) != entry['sha256']:
        return f'{name} fails its SHA-256 checksum'
    return None


def load_latest(directory: str | os.PathLike, evict_damaged: bool = False) -> Checkpoint:
    """Load the newest checkpoint that verifies; corrupt or partial ones are skipped, logged.

    Args:
        directory: the checkpoints' directory.
        evict_damaged: when none verifies in full, load the newest whose own files do, the
            frames of its missing or damaged image segments dropped (``load_checkpoint``), so
            a segment damaged at rest costs those frames, not the run.

    Raises:
        CheckpointError: there is no checkpoint, or none verifies (the last failure chained).
    """
    error: CheckpointError | None = None
    for path in list_checkpoints(directory):
        try:
            return load_checkpoint(path)
        except CheckpointError as exc:
            _LOG.warning('skipping checkpoint: %s', exc)
            error = exc
    if error is None:
        raise CheckpointError(f'no checkpoint in {directory}')
    for path in list_checkpoints(directory) if evict_damaged else []:
        try:
            checkpoint = load_checkpoint(path, evict_damaged=True)
        except CheckpointError as exc:
            error = exc
            continue
        _LOG.warning('no checkpoint verifies in full; loading %s without its damaged image '
                     'segments, whose frames are dropped: %s', path.name,
                     '; '.join(checkpoint.damaged_segments.values()))
        return checkpoint
    raise CheckpointError(f'no valid checkpoint in {directory}') from error


def restore(checkpoint: Checkpoint, agent: 'DrQAgent', replay: 'ReplayBuffer') -> dict[str, Any]:
    """Load ``checkpoint`` into ``agent`` and ``replay``; return the saved counters.

    The frames of its damaged image segments, if loaded with ``evict_damaged``, are dropped
    from the buffer (counted in ``checkpoint.evicted_frames``).

    Raises:
        CheckpointError: the checkpoint does not fit this agent or buffer.
    """
    try:
        agent.load_state_dict(checkpoint.agent_state)
        checkpoint.evicted_frames = replay.load_state_dict(
            checkpoint.replay_arrays, checkpoint.replay_meta, checkpoint.replay_segments,
            evict=checkpoint.damaged_segments)
    except (KeyError, ValueError, OSError) as exc:
        raise CheckpointError(f'{checkpoint.path} does not fit: {exc}') from exc
    if checkpoint.evicted_frames:
        _LOG.warning('restored checkpoint %s with %d frames dropped from the replay (their '
                     'image segments were damaged)', checkpoint.path.name,
                     checkpoint.evicted_frames)
    _LOG.info('restored checkpoint %s (%s)', checkpoint.path.name, _said(checkpoint.counters))
    return dict(checkpoint.counters)


def _said(counters: Mapping[str, Any]) -> dict[str, Any]:
    """The counters for a log line: the numbers, not the lists and settings."""
    return {k: v for k, v in counters.items() if not isinstance(v, (list, dict))}


def _numbered(root: Path) -> list[tuple[int, Path]]:
    found = []
    for path in root.iterdir():
        match = _NAME.match(path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    return sorted(found, reverse=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def _sync(f: Any) -> None:
    f.flush()
    os.fsync(f.fileno())


def write_synced_text(path: Path, text: str) -> None:
    """Write ``text`` and sync it to disk (a rename after it then survives a power cut)."""
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
        _sync(f)


def fsync_dir(path: Path) -> None:
    """Sync a folder's entries: a file renamed into it is there after a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""Atomic checkpoints of the learner, keeping the last K.

A checkpoint holds the agent (networks, optimisers, RNG), the replay buffer (frames, images,
labels, the queue of early labels) and the loop counters.

Layout of ``<dir>/ckpt-00000042/``: ``agent.pt`` (``torch.save`` of tensors and plain Python,
read back with ``weights_only=True``), ``replay.npz`` (``np.savez``, no pickle), ``meta.json``
(counters, replay metadata) and ``manifest.json`` (size and SHA-256 of the three others). A
checkpoint is written into a temporary directory beside the final one, every file and the
directory are fsynced, and one ``os.rename`` publishes it, so a crash leaves either the complete
checkpoint or an ignored temporary directory. One writer per directory.
"""
from dataclasses import dataclass
import hashlib
import json
import logging
import os
from pathlib import Path
import re
import shutil
from typing import Any, Mapping, TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sole_r1_ros.rl.drq import DrQAgent
    from sole_r1_ros.rl.replay import ReplayBuffer

_LOG = logging.getLogger(__name__)

FORMAT_VERSION = 1
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


def snapshot(agent: 'DrQAgent', replay: 'ReplayBuffer', counters: Mapping[str, Any]
             ) -> Checkpoint:
    """Copy what a checkpoint holds, in memory: quick, so callers may hold their locks."""
    arrays, replay_meta = replay.state_dict()
    return Checkpoint(path=None, agent_state=agent.state_dict(), replay_arrays=arrays,
                      replay_meta=replay_meta, counters=dict(counters))


def save_checkpoint(directory: str | os.PathLike, agent: 'DrQAgent', replay: 'ReplayBuffer',
                    counters: Mapping[str, Any], keep: int = 3) -> Path:
    """Write a new checkpoint atomically and retire all but the newest ``keep``.

    Args:
        counters: JSON-able loop state of the caller (env steps, learning steps, episodes, the
            next episode id, ...), returned unchanged by ``restore``.

    Returns:
        The directory of the new checkpoint.
    """
    return write_checkpoint(directory, snapshot(agent, replay, counters), keep)


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
        existing = _numbered(Path(directory))
        if len(existing) < 2:
            raise
        # Only where that makes room: while the replay fills, each checkpoint is larger than
        # the oldest, and a full disk retired one good checkpoint per try down to one.
        oldest, needed = existing[-1][1], _bytes_of(state)
        room = shutil.disk_usage(directory).free + _folder_bytes(oldest)
        if room < needed * 1.05:
            raise OSError(errno.ENOSPC, f'no space for a checkpoint of {needed / 1e9:.2f} GB: '
                          f'{room / 1e9:.2f} GB even with {oldest.name} retired; the '
                          f'{len(existing)} kept are left as they are') from exc
        _LOG.warning('no space for checkpoint %d: retiring %s first', existing[0][0] + 1,
                     oldest.name)
        _retire(oldest)
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
    return size(state.replay_arrays) + size(state.agent_state)


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob('*') if f.is_file())


def _write_checkpoint(directory: str | os.PathLike, state: Checkpoint, keep: int) -> Path:
    import errno

    import torch

    if keep < 1:
        raise ValueError(f'keep must be >= 1, got {keep}')
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    for stale in [*root.glob(_TMP_PREFIX + '*'), *root.glob(_DELETING_PREFIX + '*')]:
        shutil.rmtree(stale, ignore_errors=True)
    existing = _numbered(root)
    number = existing[0][0] + 1 if existing else 0
    final = root / f'ckpt-{number:08d}'
    tmp = root / f'{_TMP_PREFIX}{number:08d}-{os.getpid()}'
    tmp.mkdir()
    try:
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
        _write_text(tmp / 'meta.json', json.dumps(meta))
        manifest = {name: {'size': (tmp / name).stat().st_size, 'sha256': _sha256(tmp / name)}
                    for name in _FILES}
        _write_text(tmp / _MANIFEST, json.dumps(manifest, indent=1))
        _fsync_dir(tmp)
        os.rename(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for _, old in _numbered(root)[keep:]:
        _retire(old)
    _LOG.info('saved checkpoint %s (%s)', final.name, state.counters)
    return final


def _retire(path: Path) -> None:
    """Delete an old checkpoint that verifies; set an unreadable one aside, never delete it.

    An unreadable checkpoint may be the only copy of a run (a disk error, a bug): it is
    renamed ``<name>.unreadable`` so rotation stops counting it and a person can look.
    """
    try:
        verify_checkpoint(path)
    except CheckpointError as exc:
        aside = path.with_name(path.name + '.unreadable')
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


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read and verify one checkpoint directory.

    Raises:
        CheckpointError: a file is missing, truncated, fails its checksum or does not parse.
    """
    import torch

    path = Path(path)
    try:
        verify_checkpoint(path)
        meta = json.loads((path / 'meta.json').read_text())
        if meta.get('format_version') != FORMAT_VERSION:
            raise CheckpointError(f'format version {meta.get("format_version")} is not '
                                  f'{FORMAT_VERSION}')
        agent_state = torch.load(path / 'agent.pt', map_location='cpu', weights_only=True)
        with np.load(path / 'replay.npz', allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except CheckpointError as exc:
        raise CheckpointError(f'{path}: {exc}') from exc
    except (OSError, KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f'{path}: unreadable checkpoint ({exc})') from exc
    return Checkpoint(path=path, agent_state=agent_state, replay_arrays=arrays,
                      replay_meta=meta['replay'], counters=meta['counters'])


def verify_checkpoint(path: str | os.PathLike) -> None:
    """Check every file of a checkpoint against its manifest (size, SHA-256), unparsed.

    Raises:
        CheckpointError: a file is missing, truncated or fails its checksum.
    """
    path = Path(path)
    try:
        manifest = json.loads((path / _MANIFEST).read_text())
        for name in _FILES:
            entry = manifest[name]
            size = (path / name).stat().st_size
            if size != entry['size']:
                raise CheckpointError(f'{name} has {size} bytes, manifest says {entry["size"]}')
            if _sha256(path / name) != entry['sha256']:
                raise CheckpointError(f'{name} fails its SHA-256 checksum')
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f'unreadable checkpoint ({exc})') from exc


def load_latest(directory: str | os.PathLike) -> Checkpoint:
    """Load the newest checkpoint that verifies; corrupt or partial ones are skipped, logged.

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
    raise CheckpointError(f'no valid checkpoint in {directory}') from error


def restore(checkpoint: Checkpoint, agent: 'DrQAgent', replay: 'ReplayBuffer') -> dict[str, Any]:
    """Load ``checkpoint`` into ``agent`` and ``replay``; return the saved counters.

    Raises:
        CheckpointError: the checkpoint does not fit this agent or buffer.
    """
    try:
        agent.load_state_dict(checkpoint.agent_state)
        replay.load_state_dict(checkpoint.replay_arrays, checkpoint.replay_meta)
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f'{checkpoint.path} does not fit: {exc}') from exc
    _LOG.info('restored checkpoint %s (%s)', checkpoint.path.name, checkpoint.counters)
    return dict(checkpoint.counters)


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


def _write_text(path: Path, text: str) -> None:
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
        _sync(f)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

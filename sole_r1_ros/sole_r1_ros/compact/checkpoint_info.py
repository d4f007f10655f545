"""What a compact checkpoint says about itself, read without importing torch.

``sole-r1 learn`` reads one flag of the reward model (whether it was trained on frames with the
robot erased) before it starts the nodes. Loading the file with torch cost 2.9 s of every
start on 2 cores, in a child process so that the runner would not hold torch's 320 MB for the
whole run. The flag lies in the pickle beside the weights; this reads the pickle and leaves
every tensor out, so it needs neither torch nor the weights' bytes.
"""
from collections import OrderedDict
import io
import os
import pickle
import reprlib
from typing import Any
import zipfile

CHECKPOINT_FORMAT = 'sole_r1_compact'
CHECKPOINT_VERSION = 2
DEFAULT_CHECKPOINT = 'compact_progress.pt'


def default_checkpoint_path(name: str = DEFAULT_CHECKPOINT) -> str:
    """A checkpoint shipped in the package (``sole_r1_ros/data/<name>``)."""
    import sole_r1_ros

    return os.path.join(os.path.dirname(sole_r1_ros.__file__), 'data', name)


class CheckpointInfoError(ValueError):
    """Not a compact checkpoint this code reads, or its pickle is not torch.save's."""


class _LeftOut:
    """Stands for every torch object in the pickle (tensors, storages, their rebuild calls)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> '_LeftOut':
        return self

    def __setstate__(self, state: Any) -> None:
        pass


class _InfoUnpickler(pickle.Unpickler):
    """Builds plain Python only: a torch name becomes a placeholder, anything else is refused.

    As safe as torch's ``weights_only`` loader for this use: no class outside an ordered dict
    is ever constructed, and no storage is read.
    """

    def find_class(self, module: str, name: str) -> Any:
        if module == 'collections' and name == 'OrderedDict':
            return OrderedDict
        if module == 'torch' or module.startswith('torch.'):
            return _LeftOut
        raise pickle.UnpicklingError(f'{module}.{name} is not in a compact checkpoint')

    def persistent_load(self, pid: Any) -> _LeftOut:   # a tensor's storage, kept apart
        return _LeftOut()


def read_info(path: str | os.PathLike) -> dict[str, Any]:
    """The ``info`` a compact checkpoint was saved with (``compact.model.save_checkpoint``).

    Raises:
        CheckpointInfoError: no such file, not the zip archive torch.save writes, not a
            compact checkpoint as ``save_checkpoint`` writes one, or a newer version than this
            code reads. The full loader (``compact.model.load_checkpoint``) says more.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            # where torch.load reads it: data.pkl in the folder of the archive's first entry
            pickled = f"{names[0].split('/')[0]}/data.pkl" if names else ''
            if pickled not in names:
                raise CheckpointInfoError(f'{path}: no data.pkl, not a torch.save archive')
            payload = _InfoUnpickler(io.BytesIO(archive.read(pickled))).load()
    except CheckpointInfoError:
        raise
    except Exception as exc:  # noqa: BLE001 (zip, zlib, pickle, recursion: all unreadable)
        raise CheckpointInfoError(f'{path}: {str(exc) or type(exc).__name__}') from exc
    if not isinstance(payload, dict) or payload.get('format') != CHECKPOINT_FORMAT:
        raise CheckpointInfoError(f'{path} is not a {CHECKPOINT_FORMAT} checkpoint')
    version = payload.get('version', 0)
    if type(version) is not int or version > CHECKPOINT_VERSION:
        raise CheckpointInfoError(f'{path} has version {reprlib.repr(version)}; this code '
                                  f'reads <= {CHECKPOINT_VERSION}')
    info = payload.get('info', {})
    if not (isinstance(payload.get('config'), dict) and 'state_dict' in payload
            and isinstance(info, dict)
            and isinstance(info.get('robot_erased', False), bool)):
        raise CheckpointInfoError(f'{path}: malformed {CHECKPOINT_FORMAT} checkpoint')
    return dict(info)

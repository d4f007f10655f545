"""User-given progress labels of an episode: per frame, or keypoints interpolated in time.

Wherever an episode's labels are given (``labels.json`` of an episode folder, or an entry of a
bag's labels file) they are a JSON object with a ``progress`` list and one of two meanings:

- without ``time_s``: one percentage per frame, e.g. ``{"progress": [0, 0, 5, 12, ...]}``;
- with ``time_s``: keypoints, e.g. ``{"time_s": [0, 2.5, 6], "progress": [0, 40, 100]}``,
  linearly interpolated at each frame's time since the episode's first frame (held beyond the
  last keypoint).

Values are percentages in [-100, 100] (kept as given; fine-tuning examples round them to
integers), and the first frame must be at 0% because the SOLE-R1 prompt states that the first
timestep's progress is 0%.
"""
import logging
import math
from typing import Any, Mapping, Sequence

import numpy as np

from sole_r1_ros.reward import protocol

logger = logging.getLogger(__name__)

# Labels within this of 0 at the first frame count as 0 (float noise in exported labels).
_FIRST_FRAME_TOLERANCE = 0.5


def resolve_progress(entry: Mapping[str, Any], times_s: Sequence[float],
                     where: str) -> list[float]:
    """Turn one episode's labels into a percentage per frame.

    Args:
        entry: a mapping with a ``progress`` list and optionally ``time_s`` (other keys, such
            as ``task``, are ignored).
        times_s: time of each frame since the episode's first frame [s].
        where: names the episode in error messages.

    Raises:
        ValueError: missing or malformed lists, a wrong length, non-finite or out-of-range
            values, unsorted keypoint times, or a first frame that is not at 0%.
    """
    progress = entry.get('progress') if isinstance(entry, Mapping) else None
    if not isinstance(progress, (list, tuple)):
        raise ValueError(f'{where}: labels need a "progress" list, got {entry!r:.80}')
    if 'time_s' in entry:
        values = _interpolate(entry['time_s'], progress, times_s, where)
    else:
        if len(progress) != len(times_s):
            raise ValueError(f'{where}: {len(progress)} progress labels for {len(times_s)} '
                             'frames (give one per frame, or time_s keypoints)')
        values = [_number(v, where) for v in progress]
    if values and abs(values[0]) > _FIRST_FRAME_TOLERANCE:
        raise ValueError(f'{where}: the first frame is labelled {values[0]}%, but the prompt '
                         'defines the first timestep as 0%; subtract it from every label')
    result = [0.0, *values[1:]] if values else []
    for index, value in enumerate(result):
        if not protocol.PROGRESS_MIN <= round(value) <= protocol.PROGRESS_MAX:
            raise ValueError(f'{where}: label of frame {index} is {value}%, outside '
                             f'[{protocol.PROGRESS_MIN}, {protocol.PROGRESS_MAX}]')
    return [min(float(protocol.PROGRESS_MAX), max(float(protocol.PROGRESS_MIN), v))
            for v in result]


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        raise ValueError(f'{where}: progress labels must be finite numbers, got {value!r}')
    return float(value)


def _interpolate(key_times: Any, key_values: Sequence[Any], times_s: Sequence[float],
                 where: str) -> list[float]:
    if not isinstance(key_times, (list, tuple)):
        raise ValueError(f'{where}: time_s must be a list, got {key_times!r:.80}')
    times = [_number(t, where) for t in key_times]
    values = [_number(v, where) for v in key_values]
    if not times or len(times) != len(values):
        raise ValueError(f'{where}: time_s and progress must be equally long and non-empty, '
                         f'got {len(times)} and {len(values)}')
    if any(b <= a for a, b in zip(times, times[1:])):
        raise ValueError(f'{where}: keypoint times must increase strictly, got {times}')
    return np.interp(np.asarray(times_s, dtype=float), times, values).tolist()

"""Read and write the videos of labelled episodes (OpenCV; RGB arrays in and out).

The one video reader of the package: ``sole-r1 score``, the labelled-episode folders and the
old evaluation layout all decode through it. Frame counts come from decoding, not from the
container, whose counts can lie.
"""
import os
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

DEFAULT_FPS = 10.0
'''Frame rate assumed when a container does not say.'''


def _open(path: str) -> Any:
    import cv2

    if not os.path.isfile(path):
        raise FileNotFoundError(f'no such video: {path}')
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise ValueError(f'cannot read video {path}')
    return capture


def iter_frames(path: str) -> Iterator[np.ndarray]:
    """Every frame of ``path`` as HxWx3 uint8 RGB, decoded one at a time.

    Raises:
        FileNotFoundError: no file; ValueError: OpenCV cannot open it.
    """
    import cv2

    capture = _open(path)
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def read_frames(path: str, wanted: Iterable[int] | None = None,
                transform: Callable[[np.ndarray], np.ndarray] | None = None
                ) -> list[np.ndarray] | dict[int, np.ndarray]:
    """All frames (a list), or only the frames at ``wanted`` indices (a dict by index).

    Only the wanted frames are kept in memory, each passed through ``transform`` (e.g.
    shrunk to a network's input) as it is decoded, so a long video costs what it shows.
    """
    fit = (lambda frame: frame) if transform is None else transform
    if wanted is None:
        return [fit(frame) for frame in iter_frames(path)]
    wanted = set(wanted)
    frames: dict[int, np.ndarray] = {}
    for index, frame in enumerate(iter_frames(path)):
        if index in wanted:
            frames[index] = fit(frame)
            if len(frames) == len(wanted):
                break
    return frames


def count_frames(path: str) -> int:
    """Decoded frame count of a video.

    Raises:
        ValueError: unreadable, or no frame decodes.
    """
    capture = _open(path)
    count = 0
    try:
        while capture.grab():
            count += 1
    finally:
        capture.release()
    if count == 0:
        raise ValueError(f'cannot read video {path}: no frames decoded')
    return count


def video_fps(path: str) -> float:
    """The container's frame rate, or ``DEFAULT_FPS`` when it has none."""
    import cv2

    capture = _open(path)
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return float(fps) if fps and np.isfinite(fps) and fps > 0 else DEFAULT_FPS


def write_video(path: str, frames: Sequence[np.ndarray], fps: float = DEFAULT_FPS) -> str:
    """Write RGB frames as an MP4 (mp4v, lossy); return ``path``.

    Raises:
        ValueError: no frames, frames of different sizes, or OpenCV cannot write.
    """
    import cv2

    if not len(frames):
        raise ValueError(f'no frames to write to {path}')
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), float(fps), (width, height))
    if not writer.isOpened():
        raise ValueError(f'cannot write video {path}')
    try:
        for frame in frames:
            if frame.shape[:2] != (height, width):
                raise ValueError(f'{path}: frame of shape {frame.shape} in a '
                                 f'{width}x{height} video')
            writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path

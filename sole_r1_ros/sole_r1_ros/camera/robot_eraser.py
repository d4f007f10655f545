"""Take the robot out of camera frames, given its mask, so a reward model sees the objects only.

A progress model that sees the arm learns to reward the arm's motion (the ghost probe of
``synth/ghost.py``); one that never sees it must read what the arm did to the objects. The
robot knows where it is in each image (its joint states, its URDF and the camera calibration:
a self-filter; in simulation, the renderer's segmentation), so the pixels it covers can be
replaced:

- a **fixed camera** keeps, for every pixel, the last colour it had while the robot was not
  on it (a background memory); pixels not yet seen free of the robot are gray;
- a **moving camera** (on the wrist) sees another scene every frame, so the pixels the robot
  covers are gray.

Masks are dilated by ``grow`` pixels, as self-filters pad the robot's outline, so that no
fringe of arm colour is left at the edges.
"""
import cv2
import numpy as np

FILL = 128
'''Gray level of pixels whose background is unknown.'''


def grow_mask(mask: np.ndarray, pixels: int = 1) -> np.ndarray:
    """``mask`` (H×W bool) dilated by ``pixels`` in every direction (a square element)."""
    if pixels < 0:
        raise ValueError(f'grow must be >= 0 pixels, got {pixels}')
    if pixels == 0:
        return mask.copy()
    kernel = np.ones((2 * pixels + 1, 2 * pixels + 1), dtype=np.uint8)
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


class RobotEraser:
    """Erase the robot from one camera's frames of one episode, frame by frame.

    Feed every frame in time order (not only the frames a reward query shows): the background
    memory of a fixed camera is only as fresh as the frames it was given.
    """

    def __init__(self, fixed_camera: bool, grow: int = 1, fill: int = FILL) -> None:
        """Choose how to erase.

        Args:
            fixed_camera: True for a camera that does not move (background memory), False
                for one that moves with the robot (robot pixels filled with ``fill``).
            grow: pixels by which each mask is dilated.
            fill: gray level of pixels whose background is unknown.
        """
        if not 0 <= fill <= 255:
            raise ValueError(f'fill must be a gray level 0-255, got {fill}')
        if grow < 0:
            raise ValueError(f'grow must be >= 0 pixels, got {grow}')
        self._fixed = fixed_camera
        self._grow = grow
        self._fill = fill
        self._memory: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the background: call it when a new episode starts."""
        self._memory = None

    def __call__(self, frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Return a copy of ``frame`` (H×W×3 uint8) without the robot.

        Args:
            mask: H×W, true (or non-zero) where the robot is; an H×W×3 mask image is read
                by its first channel.

        A frame of another size than the episode's (a camera restarted at another
        resolution) starts the background memory again: raising on it threw away every later
        frame of the episode.

        Raises:
            ValueError: the frame is not H×W×3 uint8, or the mask is not the frame's size.
        """
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f'frame must be H×W×3 uint8, got {frame.shape} {frame.dtype}')
        mask = np.asarray(mask)
        if mask.ndim == 3:
            mask = mask[..., 0]
        if mask.shape != frame.shape[:2]:
            raise ValueError(f'robot mask {mask.shape} does not match the frame '
                             f'{frame.shape[:2]}')
        robot = grow_mask(mask.astype(bool), self._grow)
        if not self._fixed:
            erased = frame.copy()
            np.copyto(erased, np.uint8(self._fill), where=robot[..., None])
            return erased
        if self._memory is None or self._memory.shape != frame.shape:
            self._memory = np.full_like(frame, self._fill)
        # copyto with a mask: 3x faster than boolean indexing on a 384 px tile (the same pixels).
        np.copyto(self._memory, frame, where=~robot[..., None])
        return self._memory.copy()


def erase_episode(frames: np.ndarray, masks: np.ndarray, fixed_camera: bool,
                  grow: int = 1) -> np.ndarray:
    """One camera's whole episode (N×H×W×3 uint8, with N masks) without the robot.

    Raises:
        ValueError: as ``RobotEraser``, or a different number of frames and masks.
    """
    if len(frames) != len(masks):
        raise ValueError(f'{len(frames)} frames but {len(masks)} robot masks')
    eraser = RobotEraser(fixed_camera, grow=grow)
    return np.stack([eraser(f, m) for f, m in zip(frames, masks)]) if len(frames) else (
        np.asarray(frames).copy())

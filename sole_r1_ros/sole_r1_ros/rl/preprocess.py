"""Turn raw robot observations into the arrays the agent and the replay buffer take."""
from typing import Mapping

import numpy as np

from sole_r1_ros.rl.config import DrQConfig
from sole_r1_ros.rl.replay import STATE_KEY


def prepare_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an H x W x 3 uint8 RGB image to 3 x size x size uint8 (area interpolation).

    Raises:
        ValueError: not an H x W x 3 uint8 array.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f'image must be H x W x 3 uint8, got {image.shape} {image.dtype}')
    if image.shape[:2] != (size, size):
        import cv2  # opencv-python-headless, a base dependency; imported only when resizing

        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image.transpose(2, 0, 1))


def prepare_observation(state: np.ndarray, images: Mapping[str, np.ndarray | None],
                        config: DrQConfig) -> dict[str, np.ndarray]:
    """Build the observation dict of ``DrQAgent.act`` and ``ReplayBuffer.add``.

    Args:
        state: proprioception (joint positions, end-effector pose, gripper; or the simulator's
            state vector), D floats.
        images: H x W x 3 uint8 views by name; only ``config.image_keys`` are used, and only for
            the pixels variant.

    Raises:
        ValueError: a view the pixels variant needs is missing.
    """
    obs = {STATE_KEY: np.asarray(state, np.float32).reshape(-1)}
    if config.variant == 'pixels':
        for key in config.image_keys:
            if images.get(key) is None:
                raise ValueError(f'view {key!r} is missing (render the cameras for pixels)')
            obs[key] = prepare_image(images[key], config.image_size)
    return obs

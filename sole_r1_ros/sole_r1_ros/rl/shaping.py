"""Progress [%] from the reward model -> per-transition reward (pure numpy)."""
import numpy as np


def progress_to_reward(progress: np.ndarray, previous_progress: np.ndarray,
                       mode: str = 'progress', scale: float = 1.0, success_bonus: float = 0.0,
                       success_progress: float = 100.0) -> np.ndarray:
    """Shape progress p [%] into the reward r_t of the transition into the frame with ``progress``.

    'progress': r_t = scale * p_{t+1} / 100 (the SOLE-R1 paper's dense reward);
    'delta': r_t = scale * (p_{t+1} - p_t) / 100. ``success_bonus`` is added where
    p_{t+1} >= ``success_progress``.

    >>> progress_to_reward(np.array([50.0, 100.0]), np.array([40.0, 90.0]), 'delta', 1.0, 1.0)
    array([0.1, 1.1])
    """
    progress = np.asarray(progress, np.float64)
    previous_progress = np.asarray(previous_progress, np.float64)
    if mode == 'progress':
        reward = progress / 100.0
    elif mode == 'delta':
        reward = (progress - previous_progress) / 100.0
    else:
        raise ValueError(f"mode must be 'progress' or 'delta', got {mode!r}")
    reward = scale * reward
    if success_bonus:
        reward = reward + success_bonus * (progress >= success_progress)
    return reward

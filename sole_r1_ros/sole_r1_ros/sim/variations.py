"""A Meta-World task's 50 object/goal variations, as MT1 draws them, in a quarter of its time.

``metaworld.MT1(task, seed)`` resets a fresh env 50 times and keeps each reset's random vector.
Each reset moves the hand into place with 2 x 50 physics steps, which draw no random numbers:
0.7 of the 0.9 s that MT1 took per simulator built (2026-12-07, 2 cores; 34 times in three
test files, at every ``sole-r1 learn`` start, per synthesized episode folder). Here the hand is
not moved: forward kinematics alone gives a reset the poses and ``init_tcp`` it reads while it
draws (at the arm's rest pose; no draw depends on them), and the env is thrown away after.

The variations are byte for byte MT1's: for all 50 tasks with seeds 0, 1 and 7
(``python tools/check_task_variations.py``), and for three tasks in ``test_sim_robot``
against ``metaworld.MT1`` itself.
"""
import pickle
from typing import Any

import numpy as np

from sole_r1_ros.sim._deps import import_metaworld, import_mujoco


def env_class(task: str) -> type:
    """The Meta-World env class of ``task`` (MT1's ``train_classes[task]``).

    Raises:
        ValueError: ``task`` is not a Meta-World v3 task.
    """
    import_metaworld()
    from metaworld import _env_dict

    if task not in _env_dict.ALL_V3_ENVIRONMENTS:
        raise ValueError(f'{task} is not a V3 environment')
    return _env_dict.ALL_V3_ENVIRONMENTS[task]


def task_variations(task: str, seed: int | None) -> tuple[Any, ...]:
    """``metaworld.MT1(task, seed=seed).train_tasks``: the task's variations, in MT1's order.

    With a seed, numpy's global random state is left as it was; without one the draws come
    from it and advance it, as MT1's do.

    Raises:
        ValueError: ``task`` is not a Meta-World v3 task.
    """
    metaworld = import_metaworld()
    mujoco = import_mujoco()
    from metaworld import _env_dict

    cls = env_class(task)
    kwargs = {k: v for k, v in _env_dict.ML1_ARGS_KWARGS[task]['kwargs'].items()
              if k != 'task_id'}
    state = np.random.get_state()
    if seed is not None:
        np.random.seed(seed)
    try:
        env = cls()
        try:
            env._freeze_rand_vec = False   # as metaworld._make_tasks sets up its env
            env._set_task_called = True
            env._set_task_inner(**kwargs)

            def place_hand(steps: int = 50) -> None:   # the 50 physics steps' stand-in
                mujoco.mj_forward(env.model, env.data)
                env.init_tcp = env.tcp_center

            env._reset_hand = place_hand
            vectors = []
            for _ in range(metaworld._N_GOALS):
                env.reset()
                vectors.append(env._last_rand_vec)
        finally:
            env.close()
    finally:
        if seed is not None:
            np.random.set_state(state)
    if len({vector.tobytes() for vector in vectors}) != len(vectors):   # as MT1 asserts
        raise RuntimeError(f'{task}: the {len(vectors)} variations drawn are not all different')
    return tuple(metaworld.Task(env_name=task, data=pickle.dumps(
        {**kwargs, 'rand_vec': vector, 'env_cls': cls, **metaworld._MT_OVERRIDE}))
        for vector in vectors)

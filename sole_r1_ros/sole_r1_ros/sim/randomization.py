"""Per-episode scene randomization: camera pose and field of view, lighting, colours.

A progress model trained on one fixed rendering of each scene can learn the pixels of that
rendering instead of what changed in it. Drawing the cameras, the lights and every colour anew
for each episode (domain randomization, Tobin et al. 2017) makes the look of a scene vary while
the task and its progress do not. Only the MuJoCo model's rendering fields change; physics does
not. ``SceneRandomizer`` keeps the model's own values and starts every draw from them, so
episodes never accumulate perturbations.
"""
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from sole_r1_ros.configuration import option, validate
from sole_r1_ros.sim._deps import import_mujoco


@dataclass(frozen=True)
class SceneRandomization:
    """How far one episode's rendering may move from the scene's own, at strength 1."""

    camera_shift_m: float = option(0.02, 'camera position offset, uniform per axis [m]',
                                   range=(0.0, 1.0))
    camera_rotation_deg: float = option(3.0, 'camera rotation about a random axis [deg]',
                                        range=(0.0, 45.0))
    fovy_deg: float = option(3.0, 'vertical field-of-view change [deg]', range=(0.0, 30.0))
    light_scale: float = option(0.35, 'each light and the headlight scaled by 1 +- this',
                                range=(0.0, 0.95))
    light_shift_m: float = option(0.5, 'light position offset, uniform per axis [m]',
                                  range=(0.0, 5.0))
    colour_scale: float = option(0.2, 'each geom and material RGB channel scaled by 1 +- this '
                                 '(textures are tinted through their material)',
                                 range=(0.0, 0.95))
    camera_orbit_deg: float = option(
        0.0, 'fixed cameras turned about the vertical axis through orbit_pivot_m by up to this, '
        'uniform [deg]: the scene seen from another side of the table (not scaled by the '
        'strength; 0 keeps each camera on its side)', range=(0.0, 180.0))
    orbit_pivot_m: tuple[float, ...] = option(
        (0.0, 0.7, 0.0), 'the point on the table the fixed cameras orbit [m, world frame]')

    def __post_init__(self) -> None:
        validate(self)


_FIELDS = ('cam_pos', 'cam_quat', 'cam_fovy', 'light_pos', 'light_diffuse', 'geom_rgba',
           'mat_rgba')


class SceneRandomizer:
    """Draw a new look of one MuJoCo model per episode; ``restore`` puts the original back."""

    def __init__(self, model: Any, cameras: Sequence[str], strength: float = 1.0,
                 settings: SceneRandomization | None = None) -> None:
        """Remember the model's rendering fields.

        Args:
            model: the ``MjModel`` a renderer draws (changed in place by ``apply``).
            cameras: names of the cameras to move.
            strength: multiplies every range of ``settings``; 0 changes nothing.

        Raises:
            ValueError: an unknown camera, or a strength outside [0, 2].
        """
        if not 0.0 <= strength <= 2.0:
            raise ValueError(f'scene randomization strength must be in [0, 2], got {strength}')
        names = [model.camera(i).name for i in range(model.ncam)]
        unknown = [c for c in cameras if c not in names]
        if unknown:
            raise ValueError(f'cameras {unknown} not in the model; it has {sorted(names)}')
        self._model = model
        self._cameras = [names.index(c) for c in cameras]
        self._strength = float(strength)
        self._settings = settings or SceneRandomization()
        self._original = {name: np.array(getattr(model, name), copy=True) for name in _FIELDS}
        self._headlight = (np.array(model.vis.headlight.diffuse, copy=True),
                           np.array(model.vis.headlight.ambient, copy=True))

    def restore(self) -> None:
        """Put the model's own rendering fields back."""
        for name, value in self._original.items():
            getattr(self._model, name)[...] = value
        self._model.vis.headlight.diffuse[:] = self._headlight[0]
        self._model.vis.headlight.ambient[:] = self._headlight[1]

    def apply(self, rng: np.random.Generator) -> None:
        """Draw a new look from the original one (before the episode's reset renders)."""
        self.restore()
        mujoco = import_mujoco()
        s, k, model = self._settings, self._strength, self._model
        if s.camera_orbit_deg > 0:
            for index in self._cameras:
                if model.cam_bodyid[index] == 0:     # a wrist camera moves with its body
                    _orbit(mujoco, model, index, rng.uniform(-1, 1) * s.camera_orbit_deg,
                           np.asarray(s.orbit_pivot_m, dtype=float))
        if self._strength == 0.0:
            return
        for index in self._cameras:
            model.cam_pos[index] += rng.uniform(-1, 1, 3) * s.camera_shift_m * k
            axis = rng.normal(size=3)
            turn, turned = np.zeros(4), np.zeros(4)
            mujoco.mju_axisAngle2Quat(
                turn, axis / max(float(np.linalg.norm(axis)), 1e-9),
                np.radians(rng.uniform(-1, 1) * s.camera_rotation_deg * k))
            mujoco.mju_mulQuat(turned, model.cam_quat[index], turn)
            model.cam_quat[index] = turned
            model.cam_fovy[index] += rng.uniform(-1, 1) * s.fovy_deg * k
        lights = len(model.light_diffuse)
        model.light_pos[...] += rng.uniform(-1, 1, (lights, 3)) * s.light_shift_m * k
        model.light_diffuse[...] *= _scales(rng, (lights, 1), s.light_scale * k)
        model.vis.headlight.diffuse[:] = (self._headlight[0]
                                          * _scales(rng, 1, s.light_scale * k))
        for name in ('geom_rgba', 'mat_rgba'):
            rgba = getattr(model, name)
            rgba[:, :3] = np.clip(rgba[:, :3] * _scales(rng, (len(rgba), 3), s.colour_scale * k),
                                  0.0, 1.0)


def _orbit(mujoco: Any, model: Any, camera: int, degrees: float, pivot: np.ndarray) -> None:
    """Turn one world-fixed camera about the vertical through ``pivot``, still facing it."""
    angle = np.radians(degrees)
    cos, sin = np.cos(angle), np.sin(angle)
    turn = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
    model.cam_pos[camera] = turn @ (model.cam_pos[camera] - pivot) + pivot
    about_z, turned = np.zeros(4), np.zeros(4)
    mujoco.mju_axisAngle2Quat(about_z, np.array([0.0, 0.0, 1.0]), angle)
    mujoco.mju_mulQuat(turned, about_z, model.cam_quat[camera])
    model.cam_quat[camera] = turned


def _scales(rng: np.random.Generator, shape: Any, spread: float) -> np.ndarray:
    return 1.0 + rng.uniform(-spread, spread, shape)

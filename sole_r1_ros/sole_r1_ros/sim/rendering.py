"""Fast offscreen camera images of a MuJoCo scene on a CPU (Mesa llvmpipe under EGL or OSMesa).

Multisampling, shadow maps and reflections cost about 90 % of a frame under llvmpipe and add
nothing a progress model needs, so they are off; sites (the goal marker among them) are hidden
because they would show the policy and the reward model where the goal is.
"""
import os
import threading
from typing import Any, Sequence

import numpy as np

from sole_r1_ros.camera.pinhole import PinholeCamera
from sole_r1_ros.sim._deps import import_mujoco

# Meta-World's corner cameras are mounted so that their images come out upside down.
_UPSIDE_DOWN_CAMERAS = frozenset({'corner', 'corner2', 'corner3', 'corner4'})


class CameraRig:
    """Render a fixed list of named cameras of one model at one image size.

    The GL context is created on the first ``render`` call, in the calling thread, and an EGL
    context can be current in one thread only, so every later ``render`` and ``close`` must
    come from that same thread.
    """

    def __init__(self, model: Any, cameras: Sequence[str], width: int, height: int,
                 mask_body: str | None = None) -> None:
        """Check the camera names; no GL work happens here.

        Args:
            mask_body: the body whose masks ``render_masks`` draws: it and every body below
                it (for the robot, what a self-filter gives a real one).

        Raises:
            ValueError: a camera or ``mask_body`` is not in the model, or the size is not
                positive.
        """
        mujoco = import_mujoco()
        if width <= 0 or height <= 0:
            raise ValueError(f'image size must be positive, got {width}x{height}')
        names = {model.camera(i).name for i in range(model.ncam)}
        unknown = [c for c in cameras if c not in names]
        if unknown:
            raise ValueError(f'cameras {unknown} not in the model; it has {sorted(names)}')
        self._model = model
        self._cameras = tuple(cameras)
        self._width = width
        self._height = height
        self._renderer: Any = None
        self._thread_id: int | None = None
        self._closed = False
        self._option = mujoco.MjvOption()
        self._option.sitegroup[:] = 0
        self._masked_geoms: np.ndarray | None = None
        if mask_body is not None:
            self._masked_geoms = np.zeros(model.ngeom, dtype=bool)
            self._masked_geoms[subtree_geoms(model, mask_body)] = True

    @property
    def cameras(self) -> tuple[str, ...]:
        """Camera names, in the order ``render`` returns their images."""
        return self._cameras

    def render(self, data: Any) -> tuple[np.ndarray, ...]:
        """Render every camera for the current state of ``data``.

        Returns:
            One contiguous H×W×3 uint8 RGB image per camera, rows top to bottom.

        Raises:
            RuntimeError: called from another thread than the first render, or after close.
        """
        return self._render_each(data, lambda renderer: renderer.render())

    def render_masks(self, data: Any) -> tuple[np.ndarray, ...]:
        """Render every camera's mask of ``mask_body`` for the current state of ``data``.

        A second, segmentation pass of the same scene (about the cost of ``render``).

        Returns:
            One H×W×3 uint8 image per camera: 255 where the body's geoms are, 0 elsewhere.

        Raises:
            RuntimeError: as ``render``, or the rig was made without ``mask_body``.
        """
        if self._masked_geoms is None:
            raise RuntimeError('CameraRig.render_masks needs the rig made with mask_body')
        return self._render_each(data, self._mask)

    def render_depths(self, data: Any) -> tuple[np.ndarray, ...]:
        """Render every camera's depth image for the current state of ``data``.

        What an RGB-D camera aligned to the colour image gives (a RealSense's
        ``aligned_depth_to_color``): per pixel the distance along the optical axis to the
        nearest surface, table and objects included. A third pass of the scene.

        Returns:
            One H×W float32 image per camera, in metres (REP 118's 32FC1).

        Raises:
            RuntimeError: as ``render``.
        """
        return self._render_each(data, self._depth)

    def _render_each(self, data: Any, draw: Any) -> tuple[np.ndarray, ...]:
        renderer = self._renderer_for_this_thread()
        images = []
        for camera in self._cameras:
            renderer.update_scene(data, camera=camera, scene_option=self._option)
            image = draw(renderer)
            if camera in _UPSIDE_DOWN_CAMERAS:
                image = np.ascontiguousarray(image[::-1, ::-1])
            images.append(image)
        return tuple(images)

    def _mask(self, renderer: Any) -> np.ndarray:
        renderer.enable_segmentation_rendering()
        try:
            ids = renderer.render()  # H×W×2: object id, object type (-1 for none)
        finally:
            renderer.disable_segmentation_rendering()
        geom = geom_pixels(ids)
        mask = np.zeros(ids.shape[:2], dtype=bool)
        mask[geom] = self._masked_geoms[ids[..., 0][geom]]
        return np.repeat((mask * np.uint8(255))[..., None], 3, axis=2)

    @staticmethod
    def _depth(renderer: Any) -> np.ndarray:
        renderer.enable_depth_rendering()
        try:
            return renderer.render().astype(np.float32, copy=False)  # metres along the axis
        finally:
            renderer.disable_depth_rendering()

    def check_thread(self) -> None:
        """Raise unless ``render`` may be called from this thread (before doing other work).

        Raises:
            RuntimeError: another thread rendered first, or the rig is closed.
        """
        thread_id = threading.get_ident()
        if self._closed:
            raise RuntimeError('CameraRig.render called after close')
        if self._thread_id is not None and thread_id != self._thread_id:
            raise RuntimeError(
                'CameraRig.render must run in the thread that rendered first (its GL context '
                f'is current there): first thread {self._thread_id}, now {thread_id}')

    def close(self) -> None:
        """Free the GL context now, from the rendering thread, not at garbage collection."""
        if self._renderer is not None:
            self._renderer.close()
        self._renderer = None
        self._closed = True

    def _renderer_for_this_thread(self) -> Any:
        self.check_thread()
        if self._renderer is None:
            self._renderer = self._create_renderer()
            self._thread_id = threading.get_ident()
        return self._renderer

    def _create_renderer(self) -> Any:
        # Mesa's llvmpipe rasterises with one thread per core by default; on a busy two-core
        # machine one thread measured faster (14.6 vs 19.7 ms per step for two 64 px cameras,
        # load average 4). Read when the first GL context starts; LP_NUM_THREADS overrides it.
        os.environ.setdefault('LP_NUM_THREADS', '1')
        mujoco = import_mujoco()
        quality = self._model.vis.quality
        global_ = self._model.vis.global_
        # Read when the GL context is created, so set before the Renderer exists.
        quality.offsamples = 0
        global_.offwidth = max(global_.offwidth, self._width)
        global_.offheight = max(global_.offheight, self._height)
        renderer = mujoco.Renderer(self._model, height=self._height, width=self._width)
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        return renderer


def geom_pixels(ids: np.ndarray) -> np.ndarray:
    """H×W bool: the pixels of a segmentation render (ids, object types) that show a geom."""
    mujoco = import_mujoco()
    # int(): numpy compares an array with MuJoCo's enum object element by element in Python
    # (117 ms for 640x480 against 0.3 ms).
    return (ids[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM)) & (ids[..., 0] >= 0)


def subtree_geoms(model: Any, root_body: str) -> np.ndarray:
    """Indices of the geoms of ``root_body`` and of every body below it (e.g. the whole robot).

    Raises:
        ValueError: the model has no such body.
    """
    mujoco = import_mujoco()
    root = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, root_body)
    if root < 0:
        raise ValueError(f'the model has no body {root_body!r}')
    below = np.zeros(model.nbody, dtype=bool)
    below[root] = True
    for body in range(model.nbody):  # MuJoCo lists parents before their children
        below[body] |= body != 0 and below[model.body_parentid[body]]
    return np.flatnonzero(below[model.geom_bodyid])


def camera_calibration(model: Any, data: Any, camera: str, width: int, height: int
                       ) -> tuple[PinholeCamera, str]:
    """What calibrating ``camera`` would give: its intrinsics and optical frame's pose.

    For the images ``CameraRig`` renders (the corner cameras' turned upright). Returns the
    camera and the body it is fixed to: '' and its pose in the world for a fixed camera, or
    the body's name and its pose in that body (a wrist camera's hand-eye calibration).
    ``data`` must be forwarded (``mj_forward``) at least once.
    """
    mujoco = import_mujoco()
    cam = model.camera(camera).id
    fy = (height / 2) / np.tan(np.radians(model.cam_fovy[cam]) / 2)   # MuJoCo's fovy: vertical
    # MuJoCo's camera frame: x right, y up, looking down -z; the optical frame: y down, +z.
    axes = np.diag([-1.0, 1.0, -1.0]) if camera in _UPSIDE_DOWN_CAMERAS else np.diag(
        [1.0, -1.0, -1.0])
    body = int(model.cam_bodyid[cam])
    position, matrix = data.cam_xpos[cam], data.cam_xmat[cam].reshape(3, 3)
    if body:   # measured in the body's frame now, whatever the camera's MJCF mode
        body_matrix = data.xmat[body].reshape(3, 3)
        position = body_matrix.T @ (position - data.xpos[body])
        matrix = body_matrix.T @ matrix
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, (matrix @ axes).flatten())
    calibration = PinholeCamera(width, height, float(fy), float(fy), width / 2, height / 2,
                                tuple(float(v) for v in position),
                                (float(quat[1]), float(quat[2]), float(quat[3]),
                                 float(quat[0])))
    return calibration, model.body(body).name if body else ''

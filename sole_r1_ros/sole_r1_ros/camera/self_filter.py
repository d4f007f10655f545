"""A robot's mask in a calibrated camera's image, drawn from its model at its joint positions.

What a real robot gives the camera node's ``erase_robot`` on ``camera/<view>/robot_mask``
(``camera/robot_eraser.py``): the robot's own geometry (a URDF or an MJCF file), posed at the
joint positions it reports, rendered by MuJoCo's depth pass (the pixels nearer than its far
plane) from the camera's pinhole intrinsics (``sensor_msgs/CameraInfo``'s K) and its pose in
the robot's base frame (a hand-eye calibration): what ``realtime_urdf_filter`` does for depth
images, with nothing the simulator alone knows. The model has only the robot, so what stands
in front of it (the table's edge, a door, the object in the hand) is erased with it, unless
the camera also gives depth aligned to its pictures (an RGB-D camera): then a robot pixel is
kept in the mask only where the robot's own depth is not behind the measured surface
(``mask``'s ``depth``), as ``realtime_urdf_filter`` compares them. The eraser's ``grow`` pads
the outline for calibration error and mesh simplification.

MuJoCo is imported here: import this module only where a mask is drawn.
"""
import os
import threading
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from sole_r1_ros.camera.pinhole import PinholeCamera, rotation_matrix
from sole_r1_ros.camera.urdf import is_urdf, Mimic, read_urdf, resolve_mimics
from sole_r1_ros.sim._deps import import_mujoco

DEPTH_MARGIN_M = 0.03
'''How far behind the measured surface the robot may be drawn and still be erased [m]: a depth
camera's noise at a metre (1-2 cm for a RealSense D435) plus the calibration's error.'''
_CAMERA = 'self_filter_camera'
# MuJoCo's sensor size is a length; the pixels are all that matters, so any pixel pitch works.
_PIXEL_PITCH_M = 1e-6
# A geom group MuJoCo does not draw by default (groups 3-5 are hidden).
_HIDDEN_GROUP = 5
# What MuJoCo gives a moving body without mass or inertia (a kinematics-only URDF): only its
# pose is drawn, so any positive value does.
_BOUND_MASS_KG = 1e-6
_BOUND_INERTIA = 1e-9


class RobotSelfFilter:
    """Draw the robot's mask for one camera from its model and its joint positions.

    Every moving joint of the model must be given at every call: a missing joint raises
    (a mask drawn at a guessed pose would erase the wrong pixels); a URDF's mimic joints are
    set from the joints they mimic (``joint_names`` leaves them out). The GL context is made on
    the first ``mask`` call, in the calling thread; later calls and ``close`` must come from it.
    """

    def __init__(self, model_path: str, camera: PinholeCamera | None = None,
                 mesh_dir: str = '', camera_link: str = '',
                 hidden_links: Sequence[str] = (), max_side: int = 0) -> None:
        """Load and compile the robot model with a camera added; no GL work yet.

        Args:
            model_path: the robot's URDF (``.urdf``, or XML whose root is ``<robot>``) or
                MJCF (``.xml``) file. MuJoCo keeps a URDF's collision geometry (usually a
                padded hull of the visual one, which suits erasing); links with visual
                geometry only are listed in ``undrawn_links``. Links without mass or
                inertia are fine (only poses are drawn).
            camera: the camera, its pose in ``camera_link``'s frame; None: ``set_camera``
                later (when its ``CameraInfo`` comes).
            mesh_dir: where the model's mesh files are, when not beside it: a URDF's
                ``package://`` and relative paths are looked for there first
                (``read_urdf``); an MJCF's ``meshdir``.
            camera_link: the model's body (URDF link) the camera is fixed to, e.g. the hand
                for a wrist camera; '' for the base (world) frame of a fixed camera.
            hidden_links: links never drawn: those the scene always hides from this camera
                (a pedestal under the table, seen from the wrist), which the model alone
                would erase.
            max_side: draw at most this many pixels along the longer side and scale the
                mask up to the camera's size (software rendering costs per pixel; the camera
                node shrinks frames and masks to its tile before erasing); 0: full size.

        Raises:
            FileNotFoundError: no such model file.
            ValueError: MuJoCo cannot read or compile it, a URDF's mesh file is not found
                or two would be merged (``read_urdf``), it has no moving joint, no body
                ``camera_link`` or one of ``hidden_links``, or ``max_side`` < 0.
        """
        mujoco = import_mujoco()
        if max_side < 0:
            raise ValueError(f'max_side must be >= 0 (0: full size), got {max_side}')
        self._max_side = int(max_side)
        if not os.path.isfile(model_path):
            raise FileNotFoundError(f'no robot model at {model_path!r} (a URDF or MJCF file)')
        urdf = read_urdf(model_path, mesh_dir) if is_urdf(model_path) else None
        try:
            if urdf is not None:
                spec = mujoco.MjSpec.from_string(urdf.text)
            else:
                spec = mujoco.MjSpec.from_file(model_path)
                if mesh_dir:
                    spec.meshdir = mesh_dir
            parent = spec.body(camera_link) if camera_link else spec.worldbody
            if parent is None:
                raise ValueError(f'it has no body (link) {camera_link!r} to fix the camera to')
            parent.add_camera(name=_CAMERA)
            # A link without <inertial> (or of mass 0) is fine for drawing; MuJoCo refuses a
            # moving body without mass unless it is bounded.
            spec.compiler.boundmass = _BOUND_MASS_KG
            spec.compiler.boundinertia = _BOUND_INERTIA
            self._model = spec.compile()
        except Exception as exc:  # MuJoCo reports parse and compile errors as ValueError/etc.
            raise ValueError(f'MuJoCo cannot load the robot model {model_path!r}: {exc}'
                             ) from exc
        model = self._model
        moving = (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE)
        joints = {model.joint(i).name: int(model.jnt_qposadr[i])
                  for i in range(model.njnt) if model.jnt_type[i] in moving}
        # MuJoCo ignores a URDF's <mimic>: each mimic joint is set from its source here, and
        # is not asked of joint_states (a gripper's driver publishes the driven joint only).
        self._mimics = resolve_mimics(urdf.mimics if urdf else {}, tuple(joints), model_path)
        self._mimic_addresses = {name: joints[name] for name in self._mimics}
        self._joints = {name: address for name, address in joints.items()
                        if name not in self._mimics}
        if not self._joints:
            raise ValueError(f'{model_path!r} has no hinge or slide joint to pose')
        bodies = {model.body(i).name: i for i in range(model.nbody)}
        unknown = [link for link in hidden_links if link not in bodies]
        if unknown:
            raise ValueError(f'{model_path!r} has no links {unknown} to hide')
        self._undrawn_links = tuple(link for link in (urdf.visual_only_links if urdf else ())
                                    if link not in hidden_links)
        hidden = np.isin(model.geom_bodyid, [bodies[link] for link in hidden_links])
        # No robot has an infinite plane: one is a scene's floor (a Menagerie scene.xml given
        # for the robot's own file), and drawn it masked half the picture.
        planes = model.geom_type == mujoco.mjtGeom.mjGEOM_PLANE
        model.geom_group[hidden | planes] = _HIDDEN_GROUP
        self._planes = tuple(model.geom(i).name or f'geom {i}' for i in np.flatnonzero(planes))
        self._data = mujoco.MjData(model)
        # A depth pass answers the far clipping plane where nothing is drawn.
        self._far_m = 0.99 * float(model.vis.map.zfar * model.stat.extent)
        self._cam = model.camera(_CAMERA).id
        self._camera: PinholeCamera | None = None
        self._draw_size: tuple[int, int] | None = None
        self._renderer: Any = None
        self._thread_id: int | None = None
        self._closed = False
        self._option = mujoco.MjvOption()
        self._option.sitegroup[:] = 0
        if camera is not None:
            self.set_camera(camera)

    @property
    def joint_names(self) -> tuple[str, ...]:
        """The joints every ``mask`` call needs, in the model's order (no mimic joint)."""
        return tuple(self._joints)

    @property
    def mimic_joints(self) -> dict[str, Mimic]:
        """A URDF's moving mimic joints: name -> source (one of ``joint_names``) and factors."""
        return dict(self._mimics)

    @property
    def undrawn_links(self) -> tuple[str, ...]:
        """A URDF's links with visual geometry only, not hidden: never drawn, so never erased.

        MuJoCo keeps a URDF's collision geometry; a link the URDF gives no ``<collision>``
        has nothing to draw. Warn of them (or give them collision geometry).
        """
        return self._undrawn_links

    @property
    def planes(self) -> tuple[str, ...]:
        """Names of the infinite planes of the model (a scene floor), never drawn: a scene file."""
        return self._planes

    @property
    def camera(self) -> PinholeCamera | None:
        """The camera the masks are drawn for (None until one is set)."""
        return self._camera

    def set_camera(self, camera: PinholeCamera) -> None:
        """Draw the next masks for this camera (new intrinsics, size or calibration)."""
        mujoco = import_mujoco()
        model, cam = self._model, self._cam
        drawn = camera.scaled(self._max_side)
        width, height = drawn.width, drawn.height
        model.cam_pos[cam] = camera.position
        # MuJoCo's camera looks down its -z with y up; the optical frame looks down +z, y down.
        matrix = rotation_matrix(camera.orientation) @ np.diag([1.0, -1.0, -1.0])
        mujoco.mju_mat2Quat(model.cam_quat[cam], matrix.flatten())
        pitch = _PIXEL_PITCH_M
        model.cam_resolution[cam] = (width, height)
        model.cam_sensorsize[cam] = (width * pitch, height * pitch)
        # Measured on MuJoCo 3.3 (test_self_filter.py pins it): the horizontal principal
        # offset counts from the right, the vertical one from the top.
        model.cam_intrinsic[cam] = (drawn.fx * pitch, drawn.fy * pitch,
                                    (width / 2 - drawn.cx) * pitch,
                                    (drawn.cy - height / 2) * pitch)
        resized = self._draw_size != (width, height)
        self._camera, self._draw_size = camera, (width, height)
        if resized and self._renderer is not None:
            self._renderer.close()   # made again at the new size by the next mask
            self._renderer = None

    def mask(self, joint_positions: Mapping[str, float], depth: np.ndarray | None = None,
             depth_margin_m: float = DEPTH_MARGIN_M) -> np.ndarray:
        """Draw the robot at these joint positions: H×W uint8, 255 where it is.

        Args:
            joint_positions: joint name -> position (rad or m); names the model does not
                have are ignored (other devices on the same ``joint_states``), and so are
                a URDF's mimic joints: each is set from the joint it mimics.
            depth: the camera's depth image of the same moment, H×W metres along the optical
                axis, aligned to its pictures; 0, negative or not finite where it has no
                reading. With it a pixel is the robot's only where the robot, drawn, is not
                more than ``depth_margin_m`` behind the surface measured there: what stands
                in front of the robot is kept. Pixels without a reading stay the robot's.
            depth_margin_m: the depth camera's noise plus the calibration's error [m].

        Raises:
            ValueError: a joint of the model is missing or not finite, or the depth image is
                not the camera's size or the margin is negative.
            RuntimeError: no camera set yet, called from another thread than the first
                call, or after close.
        """
        mujoco = import_mujoco()
        if self._camera is None:
            raise RuntimeError('RobotSelfFilter.mask needs a camera: set_camera first')
        if depth is not None:
            depth = np.asarray(depth, dtype=np.float32)
            size = (self._camera.height, self._camera.width)
            if depth.shape != size:
                raise ValueError(f'depth image of shape {depth.shape}, the camera is '
                                 f'{size[1]}x{size[0]}: give depth aligned to its pictures')
            if not depth_margin_m >= 0:
                raise ValueError(f'depth_margin_m must be >= 0, got {depth_margin_m}')
        missing = [n for n in self._joints if n not in joint_positions]
        if missing:
            raise ValueError(f'joint positions lack {missing}: the robot mask needs every '
                             f'moving joint of the model ({len(self._joints)})')
        for name, address in self._joints.items():
            value = float(joint_positions[name])
            if not np.isfinite(value):
                raise ValueError(f'joint {name!r} position is not finite: {value}')
            self._data.qpos[address] = value
        for name, mimic in self._mimics.items():
            self._data.qpos[self._mimic_addresses[name]] = (
                mimic.multiplier * self._data.qpos[self._joints[mimic.source]] + mimic.offset)
        renderer = self._renderer_for_this_thread()
        mujoco.mj_kinematics(self._model, self._data)
        mujoco.mj_camlight(self._model, self._data)
        renderer.update_scene(self._data, camera=_CAMERA, scene_option=self._option)
        # One depth pass: where the robot is (nearer than the far plane) and how far.
        drawn_depth = renderer.render()
        mask = (drawn_depth < self._far_m).astype(np.uint8) * np.uint8(255)
        full_size = (self._camera.width, self._camera.height)
        if self._draw_size != full_size:
            mask = cv2.resize(mask, full_size, interpolation=cv2.INTER_NEAREST)
        if depth is not None:   # compared at the camera's size: its depth is not shrunk
            if self._draw_size != full_size:
                # Each drawn pixel stands for several of the camera's: the nearest robot depth
                # around it, so that a coarse pixel on a slanted link keeps the link's near end.
                drawn_depth = cv2.resize(cv2.erode(drawn_depth, np.ones((3, 3), np.uint8)),
                                         full_size, interpolation=cv2.INTER_NEAREST)
            with np.errstate(invalid='ignore'):
                mask[(depth > 0) & (drawn_depth > depth + depth_margin_m)] = 0
        return mask

    def check_drawing(self) -> None:
        """Make and free a GL context on this thread (the one that will draw), to fail early.

        Raises:
            RuntimeError: MuJoCo cannot render here, with what to set (``MUJOCO_GL``).
        """
        mujoco = import_mujoco()
        self._bind_thread()
        try:
            mujoco.Renderer(self._model, 1, 1).close()
        except Exception as exc:  # noqa: BLE001 (each GL back-end raises its own kind)
            backend = os.environ.get('MUJOCO_GL') or 'unset, so glfw, which needs a display'
            raise RuntimeError(
                f'MuJoCo cannot draw the robot mask here (MUJOCO_GL: {backend}): '
                f'{type(exc).__name__}: {exc}. Without a display set MUJOCO_GL=egl (with a GPU) '
                'or MUJOCO_GL=osmesa (CPU; apt install libosmesa6) in the environment of '
                'the launch') from exc

    def _bind_thread(self) -> None:
        if self._closed:
            raise RuntimeError('RobotSelfFilter is closed')
        thread_id = threading.get_ident()
        if self._thread_id is None:
            self._thread_id = thread_id
        elif thread_id != self._thread_id:
            raise RuntimeError('RobotSelfFilter.mask must be called from the thread that '
                               'called it first (its GL context is current there)')

    def _renderer_for_this_thread(self) -> Any:
        self._bind_thread()
        if self._renderer is None:
            mujoco = import_mujoco()
            width, height = self._draw_size
            self._model.vis.global_.offwidth = max(self._model.vis.global_.offwidth, width)
            self._model.vis.global_.offheight = max(self._model.vis.global_.offheight, height)
            self._renderer = mujoco.Renderer(self._model, height, width)
            # Depth, not segmentation: the same pixels (none differed in 180 frames of three
            # expert episodes at 64x64 and 640x480), no slower (bench_erasing.py), and the
            # robot's distance for use_depth.
            self._renderer.enable_depth_rendering()
        return self._renderer

    def close(self) -> None:
        """Free the GL context; call it from the thread that drew. Idempotent."""
        self._closed = True
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

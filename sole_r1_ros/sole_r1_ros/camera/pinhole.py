"""A calibrated pinhole camera: image size, intrinsics and its optical frame's pose.

The intrinsics are ``sensor_msgs/CameraInfo``'s K; the pose is a hand-eye calibration's answer
(the camera's optical frame in the robot's base frame), which TF would carry as a static
transform. numpy only.
"""
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class PinholeCamera:
    """A calibrated camera: image size, intrinsics [px] and optical-frame pose [m].

    The optical frame is ROS's (REP 103 ``_optical_frame``): x right, y down, z forward.
    ``cx``, ``cy`` count from the image's corner, a pixel's centre at +0.5 (MuJoCo's and
    OpenGL's pixels); CameraInfo's K counts from the first pixel's centre (ROS's and OpenCV's),
    half a pixel less: ``from_camera_info`` and ``ros_k`` convert.
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    position: tuple[float, float, float]
    '''The optical frame's origin in the frame it was calibrated in [m]: the robot's base
    frame for a fixed camera, a link's for one on the arm.'''
    orientation: tuple[float, float, float, float]
    '''Its orientation there, unit quaternion x, y, z, w (geometry_msgs order).'''

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f'camera image size must be positive, got '
                             f'{self.width}x{self.height}')
        values = (self.fx, self.fy, self.cx, self.cy, *self.position, *self.orientation)
        if not np.all(np.isfinite(values)):
            raise ValueError(f'camera intrinsics and pose must be finite, got {values}')
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f'focal lengths must be positive, got fx={self.fx}, fy={self.fy}')
        if len(self.position) != 3 or len(self.orientation) != 4:
            raise ValueError('camera position needs 3 values and orientation 4 (x, y, z, w)')
        if not 0.9 < float(np.linalg.norm(self.orientation)) < 1.1:
            raise ValueError(f'camera orientation is not a unit quaternion (x, y, z, w): '
                             f'{self.orientation}')

    @classmethod
    def from_camera_info(cls, width: int, height: int, k: Sequence[float],
                         position: Sequence[float], orientation: Sequence[float],
                         p: Sequence[float] | None = None, binning: Sequence[int] = (0, 0),
                         roi: Sequence[int] = (0, 0, 0, 0)) -> 'PinholeCamera':
        """From CameraInfo's fields and a pose, as image_geometry's PinholeCameraModel reads them.

        The principal point is moved half a pixel, from CameraInfo's pixel centres to this
        class's corner (masks sat half a pixel up and left of the robot before).

        Args:
            width, height: the calibrated (full) resolution.
            k: row-major 3x3 K (fx 0 cx, 0 fy cy, 0 0 1): the raw image's intrinsics.
            position, orientation: the optical frame's pose (see the class).
            p: row-major 3x4 P (fx' 0 cx' Tx, 0 fy' cy' Ty, 0 0 1 0), given for a rectified
                image (image_proc's ``image_rect``): its intrinsics are P's, not K's. Tx and
                Ty (a stereo pair's baseline) are not used: the pose is this camera's own.
            binning: binning_x, binning_y (0 or 1: none): the image is that many times
                smaller than the calibration; fx, cx are divided by binning_x, fy, cy by
                binning_y.
            roi: x_offset, y_offset, width, height of the region of interest the image is
                (all 0: the whole image); cx, cy count from its corner.

        The image is ``roi``'s size (or the full one) divided by the binning (rounded down).

        Raises:
            ValueError: K without 9 values or P without 12, a focal length that is not
                positive (an uncalibrated camera's zeros), or a ROI outside the image.
        """
        if len(k) != 9:
            raise ValueError(f'K needs 9 values (row-major 3x3), got {len(k)}')
        if p is None:
            name, fx, fy, cx, cy = 'K', k[0], k[4], k[2], k[5]
        else:
            if len(p) != 12:
                raise ValueError(f'P needs 12 values (row-major 3x4), got {len(p)}')
            name, fx, fy, cx, cy = 'P', p[0], p[5], p[2], p[6]
        fx, fy, cx, cy = float(fx), float(fy), float(cx), float(cy)
        if not (fx > 0 and fy > 0):
            raise ValueError(f'focal lengths must be positive, got fx={fx}, fy={fy} in '
                             f'camera_info {name} (an uncalibrated camera?)')
        width, height = int(width), int(height)
        binning_x, binning_y = (max(1, int(b)) for b in binning)
        x_offset, y_offset, roi_width, roi_height = (int(v) for v in roi)
        if min(binning) < 0 or min(x_offset, y_offset, roi_width, roi_height) < 0:
            raise ValueError(f'binning {tuple(binning)} and roi {tuple(roi)} must not be negative')
        if roi_width == 0 or roi_height == 0:
            if x_offset or y_offset:
                raise ValueError(f'roi {tuple(roi)} has an offset and no size')
            roi_width, roi_height = width, height
        elif x_offset + roi_width > width or y_offset + roi_height > height:
            raise ValueError(f'roi {tuple(roi)} (x, y, width, height) is not inside the '
                             f'{width}x{height} image')
        return cls(roi_width // binning_x, roi_height // binning_y, fx / binning_x,
                   fy / binning_y, (cx - x_offset) / binning_x + 0.5,
                   (cy - y_offset) / binning_y + 0.5,
                   tuple(float(v) for v in position), tuple(float(v) for v in orientation))

    def ros_k(self) -> list[float]:
        """The K a CameraInfo gives this camera (row-major 3x3; the principal point in ROS's)."""
        return [self.fx, 0.0, self.cx - 0.5, 0.0, self.fy, self.cy - 0.5, 0.0, 0.0, 1.0]

    def scaled(self, max_side: int) -> 'PinholeCamera':
        """The same camera with its image at most ``max_side`` pixels long (0: as it is).

        K scales with the pixels (pixel centres at +0.5, so u scales as it is); the pose
        stays.
        """
        scale = min(1.0, max_side / max(self.width, self.height)) if max_side else 1.0
        if scale >= 1.0:
            return self
        width, height = max(1, round(self.width * scale)), max(1, round(self.height * scale))
        sx, sy = width / self.width, height / self.height
        return replace(self, width=width, height=height, fx=self.fx * sx, fy=self.fy * sy,
                       cx=self.cx * sx, cy=self.cy * sy)

    def project(self, points: np.ndarray) -> np.ndarray:
        """Pixel coordinates (u right, v down; pixel centres at +0.5) of points, N x 2.

        The points are in the frame the pose is in.
        """
        rotation = rotation_matrix(self.orientation)
        local = (np.asarray(points, dtype=np.float64) - np.asarray(self.position)) @ rotation
        return np.stack([self.fx * local[:, 0] / local[:, 2] + self.cx,
                         self.fy * local[:, 1] / local[:, 2] + self.cy], axis=1)


def rotation_matrix(xyzw: Sequence[float]) -> np.ndarray:
    """3x3 rotation of a quaternion x, y, z, w (normalised first)."""
    x, y, z, w = np.asarray(xyzw, dtype=np.float64) / np.linalg.norm(xyzw)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])

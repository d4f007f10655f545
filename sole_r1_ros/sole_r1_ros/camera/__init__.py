"""ROS-free logic of the camera node: pairing views by stamp, choosing reward-query steps."""
from sole_r1_ros.camera.pairing import FramePairer, PairedFrame
from sole_r1_ros.camera.schedule import FrameThinner, QueryScheduleConfig, QueryScheduler
from sole_r1_ros.camera.tiles import decode_tile, encode_tile, shrink_to_tile

__all__ = ['FramePairer', 'FrameThinner', 'PairedFrame', 'QueryScheduleConfig', 'QueryScheduler',
           'decode_tile', 'encode_tile', 'shrink_to_tile']

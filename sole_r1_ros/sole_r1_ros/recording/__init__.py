"""Record and read rosbag2 (MCAP) bags of images, rewards and reasoning with ``rosbags``."""
from sole_r1_ros.recording.bag import (
    BagWriter, frames_near, interface_definitions, learn_installed_type, make_typestore,
    read_camera_episodes, read_topics, RecordedEpisode, stream_frames, UNMARKED_EPISODE)

__all__ = ['BagWriter', 'frames_near', 'interface_definitions', 'learn_installed_type',
           'make_typestore',
           'read_camera_episodes', 'read_topics', 'RecordedEpisode', 'stream_frames',
           'UNMARKED_EPISODE']

"""rosbag2 bags written and read with ``rosbags`` (pure Python, the layout ``ros2 bag`` writes).

The recorder gets already-serialized CDR bytes from rclpy and writes them unchanged, so writing
costs no conversion; our own message definitions are registered from the ``.msg`` files so that
other tools (Foxglove, ``ros2 bag info``, rosbags readers) can decode them from the bag alone.
"""
from dataclasses import dataclass, field
import os
from pathlib import Path
import threading

import numpy as np

_OWN_MESSAGES = ('ProgressReward', 'RewardQuery', 'Episode', 'EpisodeResult', 'TaskState')


def _require_rosbags():
    try:
        import rosbags  # noqa: F401
    except ImportError as exc:
        raise ImportError('recording bags needs rosbags: pip install "sole_r1_ros[record]"'
                          ) from exc


def interface_definitions(msg_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """Text of our ``.msg`` files by type name, e.g. 'sole_r1_interfaces/msg/ProgressReward'.

    Looked up in the installed ``sole_r1_interfaces`` share folder, or the source tree next to
    this package when running from a checkout.
    """
    candidates = [Path(msg_dir)] if msg_dir else []
    try:
        from ament_index_python.packages import get_package_share_directory
        candidates.append(Path(get_package_share_directory('sole_r1_interfaces')) / 'msg')
    except Exception:  # no ament index (plain pip install): fall back to the checkout
        pass
    candidates.append(Path(__file__).resolve().parents[3] / 'sole_r1_interfaces' / 'msg')
    for folder in candidates:
        if all((folder / f'{name}.msg').is_file() for name in _OWN_MESSAGES):
            return {f'sole_r1_interfaces/msg/{name}': (folder / f'{name}.msg').read_text()
                    for name in _OWN_MESSAGES}
    raise FileNotFoundError('cannot find the sole_r1_interfaces .msg files; looked in '
                            + ', '.join(str(c) for c in candidates))


def make_typestore():
    """A Kilted typestore that also knows our messages."""
    _require_rosbags()
    from rosbags.typesys import get_types_from_msg, get_typestore, Stores
    typestore = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for name, text in interface_definitions().items():
        types.update(get_types_from_msg(text, name))
    typestore.register(types)
    return typestore


class BagWriter:
    """Thread-safe MCAP rosbag2 writer for serialized messages; topics are added on first use."""

    def __init__(self, path: str | os.PathLike) -> None:
        _require_rosbags()
        from rosbags.rosbag2 import StoragePlugin, Writer
        self._path = Path(path)
        if self._path.exists():
            raise FileExistsError(f'bag {self._path} exists; choose a new path')
        self._typestore = make_typestore()
        self._writer = Writer(self._path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._connections: dict[str, object] = {}
        self._lock = threading.Lock()
        self.count = 0

    @property
    def path(self) -> Path:
        return self._path

    def write(self, topic: str, msgtype: str, stamp_ns: int, data: bytes) -> None:
        """Append one serialized (CDR) message; ``msgtype`` like 'sensor_msgs/msg/Image'."""
        with self._lock:
            if self._writer is None:
                return
            connection = self._connections.get(topic)
            if connection is None:
                connection = self._writer.add_connection(topic, msgtype,
                                                         typestore=self._typestore)
                self._connections[topic] = connection
            self._writer.write(connection, int(stamp_ns), bytes(data))
            self.count += 1

    def close(self) -> None:
        """Finish the bag (writes metadata.yaml); safe to call twice."""
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None


@dataclass
class RecordedEpisode:
    """Camera frames of one episode read back from a bag, oldest first."""

    episode_id: str
    stamps_ns: list[int] = field(default_factory=list)
    external: list[np.ndarray] = field(default_factory=list)
    wrist: list[np.ndarray] = field(default_factory=list)


def _image_to_rgb(msg) -> np.ndarray:
    from sole_r1_ros.nodes.conversions import image_to_rgb
    return image_to_rgb(msg)


def read_camera_episodes(path: str | os.PathLike, external_topic: str,
                         wrist_topic: str | None = None, episode_topic: str | None = 'episode',
                         max_skew_ns: int = 20_000_000) -> list[RecordedEpisode]:
    """Read the external (and wrist) frames of a bag, split into episodes at ``Episode`` msgs.

    Topics are matched by their last components, so '/robot1/camera/external/image_raw' matches
    'camera/external/image_raw'. Wrist frames are paired with the nearest external stamp.

    Raises:
        FileNotFoundError: no bag at ``path``.
        ValueError: the bag has no messages on ``external_topic``.
    """
    _require_rosbags()
    from rosbags.highlevel import AnyReader
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f'no bag at {path}')
    typestore = make_typestore()

    def matches(topic: str, wanted: str | None) -> bool:
        return wanted is not None and (topic == wanted or topic.endswith('/' + wanted.strip('/')))

    starts: list[tuple[int, str]] = []
    external: list[tuple[int, np.ndarray]] = []
    wrist: list[tuple[int, np.ndarray]] = []
    with AnyReader([path], default_typestore=typestore) as reader:
        for connection, _, raw in reader.messages():
            if not any(matches(connection.topic, t)
                       for t in (external_topic, wrist_topic, episode_topic)):
                continue
            msg = reader.deserialize(raw, connection.msgtype)
            stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
            if matches(connection.topic, episode_topic):
                starts.append((stamp, msg.episode_id))
            elif matches(connection.topic, external_topic):
                external.append((stamp, _image_to_rgb(msg)))
            else:
                wrist.append((stamp, _image_to_rgb(msg)))
    if not external:
        raise ValueError(f'bag {path} has no messages on {external_topic!r}')
    return _split(sorted(external, key=lambda x: x[0]), sorted(wrist, key=lambda x: x[0]),
                  sorted(starts), wrist_topic is not None, max_skew_ns)


def _split(external, wrist, starts, use_wrist: bool, max_skew_ns: int) -> list[RecordedEpisode]:
    episodes: list[RecordedEpisode] = []
    wrist_stamps = np.array([s for s, _ in wrist], dtype=np.int64)
    boundary = 0
    for stamp, frame in external:
        while boundary < len(starts) and starts[boundary][0] <= stamp:
            episodes.append(RecordedEpisode(starts[boundary][1]))
            boundary += 1
        if not episodes:
            episodes.append(RecordedEpisode('episode-0'))
        partner = None
        if use_wrist:
            if not len(wrist_stamps):
                raise ValueError('bag has no wrist frames; pass no wrist topic for external-only')
            index = int(np.argmin(np.abs(wrist_stamps - stamp)))
            if abs(int(wrist_stamps[index]) - stamp) > max_skew_ns:
                continue  # no wrist frame of this moment
            partner = wrist[index][1]
        episode = episodes[-1]
        episode.stamps_ns.append(stamp)
        episode.external.append(frame)
        if partner is not None:
            episode.wrist.append(partner)
    return [e for e in episodes if e.external]

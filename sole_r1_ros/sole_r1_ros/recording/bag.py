"""rosbag2 bags written and read with ``rosbags`` (pure Python, the layout ``ros2 bag`` writes).

The recorder gets already-serialized CDR bytes from rclpy and writes them unchanged, so writing
costs no conversion; our own message definitions are registered from the ``.msg`` files so that
other tools (Foxglove, ``ros2 bag info``, rosbags readers) can decode them from the bag alone.
"""
from dataclasses import dataclass, field
import logging
import os
from pathlib import Path
import threading
import time
from typing import Any, Callable, Collection, Iterator, Mapping, Sequence

import numpy as np

from sole_r1_ros.image_msgs import image_to_rgb
from sole_r1_ros.recording.recover import bag_files, scan_mcap, ScanResult
logger = logging.getLogger(__name__)

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


def learn_installed_type(typestore, msgtype: str) -> None:
    """Teach ``typestore`` ``msgtype`` (and the types it holds) from the installed ``.msg`` files.

    rosbags' Kilted store knows the core packages only; a vendor's message (``control_msgs``'
    JointJog for MoveIt Servo, ``franka_msgs``) was refused at its first message, and the bag
    recorded none of them with nothing said but one log line.

    Raises:
        ValueError: a type whose ``share/<package>/msg/<Name>.msg`` is not found in the ament
            index (the workspace that builds it is not sourced), named.
    """
    from rosbags.typesys import get_types_from_msg
    found: dict = {}
    pending = [msgtype]
    while pending:
        name = pending.pop()
        if name in typestore.types or name in found:
            continue
        package, _, short = name.partition('/msg/')
        text = _installed_msg(package, short)
        if text is None:
            raise ValueError(f'message type {name} is unknown here: no {package}/msg/{short}.msg '
                             'in the ament index (source the workspace that builds '
                             f'{package}, or record it with ros2 bag record)')
        parsed = get_types_from_msg(text, name)
        found.update(parsed)
        pending += [inner for _, fields in parsed.values() for inner in _named_types(fields)]
    if found:
        typestore.register(found)


def _installed_msg(package: str, name: str) -> str | None:
    try:
        from ament_index_python.packages import get_package_share_directory
        path = Path(get_package_share_directory(package)) / 'msg' / f'{name}.msg'
    except Exception:  # noqa: BLE001 (no such package, or no ament index at all)
        return None
    return path.read_text() if path.is_file() else None


def _named_types(node) -> list[str]:
    """Every 'package/msg/Name' in rosbags' parsed field tree."""
    if isinstance(node, str):
        return [node] if '/msg/' in node else []
    if isinstance(node, (list, tuple)):
        return [name for item in node for name in _named_types(item)]
    return []


class BagWriter:
    """Thread-safe MCAP rosbag2 writer for serialized messages; topics are added on first use.

    rosbags keeps a chunk in memory until it passes 1 MiB, and the file's own header in
    Python's buffer until then: a recorder killed before that left a 0-byte bag, and a bag of
    low-rate topics (rewards, episodes) lost minutes. Here a chunk is closed and the file
    flushed at least every ``flush_every_s``, so a kill loses at most that much; the file is
    synced to the disk every ``sync_every_s`` and at the close (metadata and folder too), so
    a power loss loses at most that much, not the ~30 s the OS may hold back. A write that
    fails (a full disk) stops the bag: rosbags would keep the failed chunk and grow it with
    every later message; ``error`` says why and what is on disk stays readable.
    """

    def __init__(self, path: str | os.PathLike, flush_every_s: float = 1.0,
                 sync_every_s: float = 5.0) -> None:
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
        self._flush_every_s = float(flush_every_s)
        self._flushed_s = self._synced_s = time.monotonic()
        self._sync_every_s = float(sync_every_s)
        self.count = 0
        self.error: str | None = None

    @property
    def path(self) -> Path:
        return self._path

    def write(self, topic: str, msgtype: str, stamp_ns: int, data: bytes) -> None:
        """Append one serialized (CDR) message; ``msgtype`` like 'sensor_msgs/msg/Image'."""
        with self._lock:
            if self._writer is None:
                return
            if self.error is not None:
                raise OSError(f'the bag stopped after {self.count} messages: {self.error}')
            try:
                connection = self._connections.get(topic)
                if connection is None:
                    learn_installed_type(self._typestore, msgtype)
                    connection = self._writer.add_connection(topic, msgtype,
                                                             typestore=self._typestore)
                    self._connections[topic] = connection
                self._writer.write(connection, int(stamp_ns), bytes(data))
                if time.monotonic() - self._flushed_s >= self._flush_every_s:
                    self._flush()
            except OSError as exc:
                self.error = f'{type(exc).__name__}: {exc}'
                raise
            self.count += 1

    def flush_if_due(self) -> None:
        """Flush what is pending once ``flush_every_s`` has passed, with no write to do it.

        A write flushes only when it comes: after the traffic stops (the learner stopped, a
        quiet topic), what came last would stay in memory until the next one, and a kill lose
        it. Call this from a timer.
        """
        with self._lock:
            if (self._writer is None or self.error is not None
                    or time.monotonic() - self._flushed_s < self._flush_every_s):
                return
            try:
                self._flush()
            except OSError as exc:
                self.error = f'{type(exc).__name__}: {exc}'

    def _flush(self) -> None:
        """Close the pending chunk and push the file to the OS (rosbags' MCAP storage)."""
        self._flushed_s = time.monotonic()
        storage = getattr(self._writer, 'storage', None)
        chunk = getattr(storage, 'chunk', None)
        if chunk is not None and chunk.bio.tell():
            storage.close_chunk()
        if storage is not None:
            storage.bio.flush()
            if self._flushed_s - self._synced_s >= self._sync_every_s:
                self._synced_s = self._flushed_s
                os.fsync(storage.bio.fileno())

    def close(self) -> None:
        """Finish the bag (writes metadata.yaml); safe to call twice."""
        with self._lock:
            if self._writer is not None:
                writer, self._writer = self._writer, None
                if self.error is None:
                    writer.close()
                    _sync_folder(self._path)
                else:   # rosbags' close would retry the failed chunk; keep what is on disk
                    try:
                        writer.storage.bio.close()
                    except OSError:
                        pass


def _sync_folder(folder: Path) -> None:
    """Sync a closed bag's files and the folder's entries to the disk (best effort)."""
    try:
        for file in folder.iterdir():
            with open(file, 'rb') as stream:
                os.fsync(stream.fileno())
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError:   # a file system without fsync of folders: the bag is closed all the same
        pass


UNMARKED_EPISODE = 'episode-0'
'''The id of the frames before any ``Episode`` message (all of a bag that has none).'''


@dataclass
class RecordedEpisode:
    """Camera frames of one episode read back from a bag, oldest first."""

    episode_id: str
    stamps_ns: list[int] = field(default_factory=list)
    external: list[np.ndarray] = field(default_factory=list)
    wrist: list[np.ndarray] = field(default_factory=list)
    truth: list[float] = field(default_factory=list)
    '''A simulator's ground-truth progress [%] per frame (NaN where none was recorded at the
    frame's moment); filled only when a truth topic is read.'''
    wrist_stamps_ns: list[int] = field(default_factory=list)
    '''The header stamp of each wrist frame (paired with the external frame nearest it).'''


def read_camera_episodes(path: str | os.PathLike, external_topic: str,
                         wrist_topic: str | None = None, episode_topic: str | None = 'episode',
                         max_skew_ns: int = 20_000_000, notes: list[str] | None = None,
                         truth_topic: str | None = None,
                         decode_frame: Callable[[int], bool] | None = None
                         ) -> list[RecordedEpisode]:
    """Read the external (and wrist) frames of a bag, split into episodes at ``Episode`` msgs.

    ``decode_frame(stamp_ns)``: decode only the frames it is true for (the others are None),
    so a reader that needs a few frames of a long bag does not hold all of them.

    With ``truth_topic`` (a simulator's ``TaskState``, privileged: for evaluation and
    experiments only), each frame also gets the ground-truth progress of its moment.

    Topics are matched by their last components, so '/robot1/camera/external/image_raw' matches
    'camera/external/image_raw'. Wrist frames are paired with the nearest external stamp. A bag
    whose writer was killed (no ``metadata.yaml``, a torn last record) is read as far as it is
    readable; what was skipped is said in ``notes`` (and logged).

    Raises:
        FileNotFoundError: no bag at ``path``.
        ValueError: the bag has no readable messages on ``external_topic``, or a camera's
            stamps go back as recorded (a restart with its own clock).
    """
    notes = [] if notes is None else notes

    # Decoded as they are read: an image message is not kept beside its frame.
    def frame(msg):
        if decode_frame is not None and not decode_frame(
                int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)):
            return None
        return image_to_rgb(msg)

    decode = {external_topic: frame, wrist_topic: frame,
              episode_topic: lambda msg: msg.episode_id,
              truth_topic: lambda msg: float(msg.progress)}
    decode = {topic: fn for topic, fn in decode.items() if topic is not None}
    image = ('sensor_msgs/msg/Image',)
    types = {external_topic: image, wrist_topic: image,
             episode_topic: ('sole_r1_interfaces/msg/Episode',),
             truth_topic: ('sole_r1_interfaces/msg/TaskState',)}
    read = read_topics(path, list(decode), notes, decode,
                       {topic: kinds for topic, kinds in types.items() if topic is not None},
                       steady=[t for t in (external_topic, wrist_topic) if t is not None])
    starts, truth = read.get(episode_topic, []), read.get(truth_topic, [])
    external, wrist = read[external_topic], read.get(wrist_topic, [])
    if not external:
        raise ValueError(_no_messages(path, external_topic))
    for topic, frames in ((external_topic, external), (wrist_topic, wrist)):
        _check_stamps(path, topic, [stamp for stamp, _ in frames])
    if wrist_topic is not None and not wrist:
        raise ValueError(_no_messages(path, wrist_topic) + ' (for the external view alone give '
                         "no wrist topic: --wrist-topic '')")
    if truth_topic is not None and not truth:
        raise ValueError(f'bag {path} has no readable messages on {truth_topic!r} (a '
                         "simulator's ground truth; a real robot's bag has none)")
    episodes = _split(external, wrist, sorted(starts), wrist_topic is not None, max_skew_ns,
                      notes)
    if truth:
        stamps, values = zip(*sorted(truth))
        stamps, values = np.array(stamps, np.int64), np.array(values, np.float64)
        for episode in episodes:
            index = _nearest(stamps, episode.stamps_ns, max_skew_ns)
            episode.truth = np.where(index >= 0, values[index], np.nan).tolist()
    return episodes


def frames_near(stamps: Sequence[int], max_skew_ns: int = 20_000_000) -> Callable[[int], bool]:
    """A ``decode_frame`` for ``read_camera_episodes``: true within ``max_skew_ns`` of a stamp.

    The frames a reader needs and their wrist partners, from a first read with none decoded
    (``decode_frame=lambda stamp: False``), whose episodes and stamps the second read repeats.
    """
    needed = np.array(sorted(stamps), dtype=np.int64)

    def near(stamp: int) -> bool:
        at = int(np.searchsorted(needed, stamp))
        return any(abs(int(needed[j]) - stamp) <= max_skew_ns
                   for j in (at - 1, at) if 0 <= j < len(needed))
    return near


def stream_frames(path: str | os.PathLike, wanted: Mapping[str, Collection[int]],
                  notes: list[str] | None = None) -> Iterator[tuple[str, int, np.ndarray]]:
    """Yield (topic, header stamp [ns], RGB frame) of the wanted images, one at a time.

    ``wanted``: per topic (matched as in ``read_topics``), the stamps of the frames to decode,
    known from a first read with none decoded; the others are skipped undecoded. In the bag's
    order, so a reader can put each episode together as its frames arrive and let it go: a
    bag of any length in the memory of a few episodes. A frame whose stamp repeats is given
    once (the first, which ``read_camera_episodes`` pairs too).

    Raises:
        FileNotFoundError: no bag at ``path``.
    """
    path, typestore = _open(path)
    notes = [] if notes is None else notes
    stamps = {topic: set(values) for topic, values in wanted.items()}
    given: set[tuple[str, int]] = set()
    matching, wanted_topic = _matcher(stamps, path)

    def frames(messages):
        for topic, msgtype, raw in messages:
            if msgtype != 'sensor_msgs/msg/Image':
                continue
            msg = typestore.deserialize_cdr(raw, msgtype)
            stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
            for name in matching(topic):
                if stamp in stamps[name] and (name, stamp) not in given:
                    given.add((name, stamp))
                    yield name, stamp, image_to_rgb(msg)
    try:
        yield from frames(_read_messages(path, typestore, wanted_topic, notes))
    except _ReaderFailed:   # what was given is not given again
        yield from frames(_scan_messages(path, wanted_topic, notes))


def _check_stamps(path, topic: str | None, stamps: list[int]) -> None:
    """Refuse frames whose header stamps do not tell them apart.

    Frames are split into episodes and paired by their stamps: a driver that stamps every
    frame 0 (or one stamp for many) joined the episodes into one and paired every external
    frame with the same wrist frame, without a word.
    """
    repeated = len(stamps) - len(set(stamps))
    if stamps and repeated > len(stamps) // 10:
        raise ValueError(f'bag {path}: {repeated} of the {len(stamps)} frames on {topic!r} '
                         'repeat the header stamp of an earlier one: the camera driver does '
                         'not stamp its frames, and they cannot be split into episodes or '
                         'paired by time; record from a driver that stamps them')


_TYPE_HINTS = {'sensor_msgs/msg/CompressedImage': (
    ': give the raw image topic, or record one (image_transport republish compressed raw)')}


def _no_messages(path, topic: str) -> str:
    """'no readable messages on topic', with the bag's image topics to choose from."""
    images = _image_topics(Path(path))
    return (f'bag {path} has no readable messages on {topic!r}'
            + (f'; its image topics: {", ".join(images)}' if images else ''))


def read_topics(path: str | os.PathLike, topics: Sequence[str],
                notes: list[str] | None = None,
                decode: Mapping[str, Callable[[Any], Any]] | None = None,
                types: Mapping[str, Sequence[str]] | None = None,
                steady: Sequence[str] = ()) -> dict[str, list[tuple[int, Any]]]:
    """Each topic's messages in a bag as (header stamp [ns], message), in stamp order.

    Topics are matched by their last components, so '/robot1/joint_states' matches
    'joint_states' (a bag with two such topics is refused: give the full name, '/robot1/...',
    which matches exactly). A bag whose writer was killed is read as far as it is readable;
    what was skipped is said in ``notes`` (and logged). A topic the bag lacks maps to an empty
    list. ``decode``: per topic, what to keep of each message instead of the message (a frame of an
    image, so that the two are never held together). ``types``: per topic, the message types
    it may hold; another is refused with its name (a compressed camera topic, a wrong
    ``--episode-topic``), where it failed inside the decoding. ``steady``: topics whose
    stamps must not go back as recorded (cameras: ``_check_clock``).

    Raises:
        FileNotFoundError: no bag at ``path``.
        ValueError: a wrong message type, or a ``steady`` topic's clock went back.
    """
    path, typestore = _open(path)
    notes = [] if notes is None else notes
    matching, wanted_topic = _matcher(topics, path)

    def keep(messages) -> dict[str, list[tuple[int, Any]]]:
        read: dict[str, list[tuple[int, Any]]] = {t: [] for t in topics}
        for topic, msgtype, raw in messages:
            for wanted in matching(topic):
                if types and wanted in types and msgtype not in types[wanted]:
                    raise ValueError(f'{topic} in {path} holds {msgtype} messages, not '
                                     f'{" or ".join(types[wanted])}'
                                     + _TYPE_HINTS.get(msgtype, ''))
            msg = typestore.deserialize_cdr(raw, msgtype)
            stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
            for wanted in matching(topic):
                read[wanted].append((stamp, decode[wanted](msg) if decode and wanted in decode
                                     else msg))
        return read
    try:
        read = keep(_read_messages(path, typestore, wanted_topic, notes))
    except _ReaderFailed:   # what rosbags gave is dropped: the scan reads it all again
        read = keep(_scan_messages(path, wanted_topic, notes))
    for note in notes:
        logger.warning('%s', note)
    for topic in steady:
        _check_clock(path, topic, read.get(topic, ()))
    for messages in read.values():
        messages.sort(key=lambda item: item[0])
    return read


_CLOCK_BACK_NS = 1_000_000_000   # late frames come a little out of order; a restart goes back


def _check_clock(path, topic: str, messages: Sequence[tuple[int, Any]]) -> None:
    """Refuse a topic whose stamps go back in time as it was recorded (a camera restarted).

    Sorted by stamp, the frames after the restart were dealt in between the earlier ones
    (14, 15, 30, 16, 31, ...) and every label went to that order, without a word.

    Raises:
        ValueError: naming the frame, the time it went back and what to do.
    """
    newest = None
    for index, (stamp, _) in enumerate(messages):
        if newest is not None and stamp < newest - _CLOCK_BACK_NS:
            raise ValueError(
                f'bag {path}: the stamps on {topic!r} go back {(newest - stamp) * 1e-9:.1f} s '
                f'at its frame {index} as recorded (a camera restarted with its own clock?): '
                'its frames cannot be put in order by time. Record with the host clock '
                '(an option of the driver), or score the part before it '
                '(ros2 bag convert with a time range)')
        newest = stamp if newest is None else max(newest, stamp)


def _open(path: str | os.PathLike):
    """(the bag's path, a typestore of our messages); FileNotFoundError when there is none."""
    _require_rosbags()
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f'no bag at {path}')
    return path, make_typestore()


def _names_match(wanted: str, topic: str) -> bool:
    """Whether a bag's ``topic`` is ``wanted``: '/x' exactly, 'x' by its last components."""
    if wanted.startswith('/'):
        return topic == wanted
    return topic.strip('/') == wanted.strip('/') or topic.endswith('/' + wanted.strip('/'))


def _matcher(topics, path):
    """``matching(topic)``: the wanted topics a bag's topic is, one bag topic each; ``wanted``.

    Two bag topics under one relative name (two robots' 'camera/external/image_raw' in one
    bag) merged their messages into one stream; the second is now refused, naming both.
    ``wanted(topic)`` only says whether a topic matches any (a filter for the readers).

    Raises (``matching``):
        ValueError: a second bag topic matches a relative name.
    """
    bound: dict[str, str] = {}

    def matching(topic: str) -> list[str]:
        found = [t for t in topics if _names_match(t, topic)]
        for name in found:
            first = bound.setdefault(name, topic)
            if first != topic:
                raise ValueError(f'bag {path}: both {first} and {topic} match {name!r}: give '
                                 f'the full name of the one to read (e.g. {first!r})')
        return found

    def wanted(topic: str) -> bool:
        return any(_names_match(t, topic) for t in topics)
    return matching, wanted


def _nearest(stamps: np.ndarray, wanted: list[int], max_skew_ns: int) -> np.ndarray:
    """Index of the stamp nearest each wanted one (the first on ties), -1 beyond the skew.

    ``stamps`` is sorted.
    """
    wanted_ns = np.asarray(wanted, np.int64)
    if not len(stamps):
        return np.full(len(wanted_ns), -1)
    after = np.clip(np.searchsorted(stamps, wanted_ns), 0, len(stamps) - 1)
    before = np.clip(after - 1, 0, len(stamps) - 1)
    pick = np.where(np.abs(stamps[before] - wanted_ns) <= np.abs(stamps[after] - wanted_ns),
                    before, after)
    pick = np.searchsorted(stamps, stamps[pick])  # the first of equal stamps
    return np.where(np.abs(stamps[pick] - wanted_ns) <= max_skew_ns, pick, -1)


def _image_topics(path: Path) -> list[str]:
    """The ``sensor_msgs/Image`` topics a whole bag holds (for an error message; [] if none)."""
    from rosbags.highlevel import AnyReader

    try:
        with AnyReader([path], default_typestore=make_typestore()) as reader:
            return sorted({c.topic for c in reader.connections
                           if c.msgtype == 'sensor_msgs/msg/Image'})
    except Exception:  # a damaged bag: the message goes without the list
        return []


class _ReaderFailed(Exception):
    """rosbags could not read a bag it had begun to read (what it gave is to be dropped)."""


def _read_messages(path: Path, typestore, wanted, notes: list[str]
                   ) -> Iterator[tuple[str, str, bytes]]:
    """Yield (topic, msgtype, CDR) of the wanted messages, one at a time.

    Read by rosbags when the bag is whole, else by scanning its MCAP files
    (``recording.recover``). A generator: a long bag's messages were all held at once (a
    704 MB bag took 1.6 GB to score). Raises ``_ReaderFailed`` when rosbags fails on a bag it
    has begun to give messages of; ``read_topics`` then starts again from the scan.
    """
    from rosbags.highlevel import AnyReader

    if (path / 'metadata.yaml').is_file() or path.suffix == '.db3':
        given = 0
        try:
            with AnyReader([path], default_typestore=typestore) as reader:
                connections = [c for c in reader.connections if wanted(c.topic)]
                # rosbags reads every topic for an empty list ("no filter"): none wanted,
                # none read (a bag without the topics raised on another type's message)
                messages = reader.messages(connections=connections) if connections else ()
                for connection, _, raw in messages:
                    given += 1
                    yield connection.topic, connection.msgtype, raw
            return
        except Exception as exc:  # rosbags raises its own error types for damaged bags
            notes.append(f'{path}: rosbags cannot read it ({exc}); scanning its MCAP files')
            if given:
                raise _ReaderFailed() from exc
    else:
        notes.append(f'{path}: no metadata.yaml (the recorder was killed before closing the '
                     'bag); recovering what its MCAP files hold')
    yield from _scan_messages(path, wanted, notes)


def _scan_messages(path: Path, wanted, notes: list[str]) -> Iterator[tuple[str, str, bytes]]:
    """Yield the wanted messages of a bag's MCAP files, scanned record by record."""
    files = list(bag_files(path))
    if not files:
        raise ValueError(f'{path}: no metadata.yaml and no .mcap file to recover')
    for file in files:
        result = ScanResult(file)
        yield from scan_mcap(file, wanted, result)
        notes.append(result.describe())


def _split(external, wrist, starts, use_wrist: bool, max_skew_ns: int,
           notes: list[str] | None = None) -> list[RecordedEpisode]:
    """Sort frames into episodes at the ``Episode`` messages.

    An ``Episode`` with an empty id ends one (a reset): frames until the next ``Episode``
    belong to none and are dropped. External frames with no wrist frame within
    ``max_skew_ns`` are left out, and how many is said in ``notes`` (a wrist camera at half
    the rate, or on another clock, left half or all of them out without a word).
    """
    episodes: list[RecordedEpisode] = []
    unpaired = 0
    partners = _nearest(np.array([s for s, _ in wrist], dtype=np.int64),
                        [s for s, _ in external], max_skew_ns)
    boundary = 0
    current: RecordedEpisode | None = None
    for (stamp, frame), index in zip(external, partners):
        while boundary < len(starts) and starts[boundary][0] <= stamp:
            episode_id = starts[boundary][1]
            current = RecordedEpisode(episode_id) if episode_id else None
            if current is not None:
                episodes.append(current)
            boundary += 1
        if current is None:
            if boundary:
                continue  # between an episode's end and the next start
            current = RecordedEpisode(UNMARKED_EPISODE)  # frames before any Episode message
            episodes.append(current)
        if use_wrist:
            if not wrist:
                raise ValueError('bag has no wrist frames; for the external view alone give '
                                 "no wrist topic (--wrist-topic '')")
            if index < 0:
                unpaired += 1
                continue  # no wrist frame of this moment
            current.wrist.append(wrist[index][1])   # None where not decoded: kept in step
            current.wrist_stamps_ns.append(wrist[index][0])
        current.stamps_ns.append(stamp)
        current.external.append(frame)
    if unpaired and notes is not None:
        notes.append(f'{unpaired} of {len(external)} external frames have no wrist frame '
                     f'within {max_skew_ns / 1e6:.0f} ms and are left out (a slower wrist '
                     "camera, or one on another clock; --wrist-topic '' reads the external "
                     'view alone)')
    return [e for e in episodes if e.external]

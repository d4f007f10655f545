"""Watch a learning run from its topics: node status, one JSON line per episode, a video.

Subscribes ``/diagnostics`` (the learner's and the reward node's counters), ``episode``,
``episode_result``, ``sole_r1/progress``, ``ground_truth`` (simulator: true success, for the
report only) and, while a video is being made, ``camera/external/image_raw``; sends the
learner's ``~/evaluate`` goal. Used by ``sole-r1 learn``; everything it writes is flushed as it
happens, so nothing is lost on a crash.
"""
from collections import deque
import json
import math
from pathlib import Path
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
from rclpy.action import ActionClient
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import Image

from sole_r1_interfaces.action import Evaluate
from sole_r1_interfaces.msg import Episode, EpisodeResult, ProgressReward, TaskState
from sole_r1_ros.image_msgs import image_to_rgb
from sole_r1_ros.nodes.camera_qos import MatchedSubscription
from sole_r1_ros.nodes.firewall import check_episode_id, Firewall, read_status
from sole_r1_ros.rl.episodes import in_frame_order
from sole_r1_ros.line_file import LineFile

_LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


class RunMonitorNode(Node):
    """Per-episode predicted and true progress, and the nodes' status, for the runner."""

    def __init__(self, episodes_jsonl: str | Path, **kwargs) -> None:
        super().__init__('run_monitor', **kwargs)
        self.firewall = Firewall(self)
        guard = self.firewall.guard
        # a killed run's half line ended; lines a full disk refuses wait for it in memory
        self._lines = LineFile(Path(episodes_jsonl))
        self._lock = threading.Lock()
        self._episode: dict | None = None
        self._closing: dict[str, dict] = {}   # ended episodes waiting for their result
        self.recent: deque = deque(maxlen=20)
        self._latencies: deque = deque(maxlen=50)
        self.status: dict[str, dict[str, str]] = {}
        self._video = None
        self._video_sub = None
        ns = self.get_namespace().rstrip('/')
        self._names = {n: f'{ns}/{n}' for n in (
            'learner_node', 'reward_node', 'camera_node', 'sim_robot_node', 'recorder_node')}
        self.create_subscription(DiagnosticArray, '/diagnostics',
                                 guard('diagnostics', self._diagnostics_callback), 20)
        self.create_subscription(Episode, 'episode', guard('episode', self._episode_callback),
                                 _LATCHED)
        self.create_subscription(EpisodeResult, 'episode_result',
                                 guard('episode_result', self._result_callback), 10)
        self.create_subscription(ProgressReward, 'sole_r1/progress',
                                 guard('progress', self._progress_callback), 50)
        self.create_subscription(TaskState, 'ground_truth',
                                 guard('ground_truth', self._truth_callback), 10)
        # An ended episode's last answer comes a model call after its end: lines wait for it.
        self.create_timer(0.25, guard('episodes_jsonl', self._write_finished))
        # made here, before the node spins: rclpy's ActionClient registers itself before it
        # has its lock (ros2/rclpy#1589), and a spinning executor can reach it in between
        self.evaluate = ActionClient(self, Evaluate, 'learner_node/evaluate')
        self._heard_s: dict[str, float] = {}   # node -> when it last reported

    # -- callbacks ------------------------------------------------------------------------------
    def _diagnostics_callback(self, msg: DiagnosticArray) -> None:
        for node, name in self._names.items():
            values = read_status(msg, name)
            if values is not None:
                self.status[node] = values
                self._heard_s[node] = time.monotonic()

    def silent_s(self, node: str) -> float:
        """Seconds since ``node`` last reported (0 before it ever did: starting is not silence).

        Its last status stays in ``status``: a learner stopped or deadlocked mid-run looked
        like one at work, and the run waited on it for ever.
        """
        heard = self._heard_s.get(node)
        return 0.0 if heard is None else time.monotonic() - heard

    def _episode_callback(self, msg: Episode) -> None:
        check_episode_id(msg.episode_id)
        with self._lock:
            current = self._episode
            if current is not None and current['episode_id'] == msg.episode_id:
                return
            if current is not None:
                current['ended'] = time.monotonic()
                self._closing[current['episode_id']] = current
                self._write_if_complete(current)
            while len(self._closing) > 4:   # results that never came: write what is known
                self._write_if_complete(next(iter(self._closing.values())), force=True)
            self._episode = ({'episode_id': msg.episode_id, 'progress': [],
                              'max_true_progress': None, 'success': False}
                             if msg.episode_id else None)

    def _result_callback(self, msg: EpisodeResult) -> None:
        """The learner's result: with the episode's end (in either order) its line is written."""
        if not math.isfinite(msg.intervention_rate):
            raise ValueError(f'non-finite intervention rate {msg.intervention_rate}')
        with self._lock:
            episode = self._find(msg.episode_id)
            if episode is not None:
                episode.update(steps=int(msg.steps), evaluation=bool(msg.evaluation),
                               env_steps=int(msg.env_steps),
                               intervention_rate=float(msg.intervention_rate),
                               label=msg.label or None, result=True)
                if msg.evaluation:   # not scored by the evaluation: another replaced it
                    episode['counted'] = bool(msg.counted)
                start = self.status.get('learner_node', {}).get('start_env_steps')
                if start is not None:   # where this session began: the curves drop what a
                    episode['session_start_env_steps'] = int(float(start))   # crash lost
                self._write_if_complete(episode)

    def _progress_callback(self, msg: ProgressReward) -> None:
        if not (math.isfinite(msg.progress) and math.isfinite(msg.latency)):
            raise ValueError(f'non-finite progress {msg.progress} or latency {msg.latency}')
        with self._lock:
            self._latencies.append(msg.latency)
            episode = self._find(msg.episode_id)   # ended ones still get their final answer
            # an invalid answer (carried forward by the reward node) measured nothing
            if episode is not None and 'written' not in episode and msg.valid:
                stamp = Time.from_msg(msg.header.stamp).nanoseconds
                episode['progress'].append((stamp, float(msg.progress)))

    def _truth_callback(self, msg: TaskState) -> None:
        if not math.isfinite(msg.progress):
            raise ValueError(f'non-finite true progress {msg.progress}')
        with self._lock:
            if self._episode is not None:
                best = self._episode['max_true_progress'] or 0.0
                self._episode['max_true_progress'] = max(best, float(msg.progress))
                self._episode['success'] |= bool(msg.success)

    def _find(self, episode_id: str) -> dict | None:
        if self._episode is not None and self._episode['episode_id'] == episode_id:
            return self._episode
        return self._closing.get(episode_id)

    def _write_finished(self) -> None:
        with self._lock:
            for episode in list(self._closing.values()):
                self._write_if_complete(episode)
            if self._lines.waiting and not self._lines.retry():
                raise OSError(f'{self._lines.path}: {self._lines.error}; {self._lines.waiting} '
                              'episode lines wait in memory until the disk takes them')

    def _answer_wait_s(self) -> float:
        """How long after its end an episode's last answer may still come: twice the slowest."""
        return min(30.0, max(1.0, 2.0 * max(self._latencies, default=0.0)))

    def _write_if_complete(self, episode: dict, force: bool = False) -> None:
        """One JSON line per episode: ended, its result in, its last answer's wait over.

        The reward node answers the episode's last frame a model call after the end (the camera
        node asks it then), so the line waits ``_answer_wait_s``; at close, what is known.
        """
        ended = episode.get('ended')
        if not (force or (ended and episode.get('result')
                          and time.monotonic() - ended >= self._answer_wait_s())):
            return
        self._closing.pop(episode['episode_id'], None)
        answers = episode.pop('progress')
        episode.pop('ended', None)
        episode.pop('result', None)
        # the answer about the latest frame is the final one: a slow model's answer about an
        # earlier frame can arrive after it
        progress = in_frame_order(answers)
        # an episode no answer came for (the reward server down) is written too, unanswered:
        # left out, it vanished from the curves and the success rates
        episode.update(final_progress=progress[-1] if progress else None,
                       max_progress=max(progress) if progress else None,
                       answers=len(progress), written=True)
        self._lines.write(json.dumps({k: v for k, v in episode.items() if k != 'written'})
                          + '\n')   # kept in memory while the disk refuses it (_write_finished)
        self.recent.append(episode)

    def _image_callback(self, msg: Image) -> None:
        if self._video is not None:
            self._video.write(np.ascontiguousarray(image_to_rgb(msg)[:, :, ::-1]),
                              msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec)

    # -- for the runner ---------------------------------------------------------------------
    def counter(self, node: str, key: str, default: float = 0.0) -> float:
        """A numeric counter of a node's last status (``default`` before one came)."""
        try:
            return float(self.status.get(node, {}).get(key, default))
        except ValueError:
            return default

    def stale_inputs(self) -> str:
        """The learner's inputs that are stale or never came (it holds the robot); '' if none."""
        stale = str(self.status.get('learner_node', {}).get('stale', 'none'))
        return '' if stale in ('', 'none') else stale

    def stale_why(self) -> str:
        """Why the learner's inputs are stale, each named ('' if it did not say)."""
        return str(self.status.get('learner_node', {}).get('stale_why', ''))

    def summary(self) -> str:
        """One line: episode, recent success, predicted progress, reward latency, updates."""
        with self._lock:
            recent = [e for e in self.recent if not e.get('evaluation')][-10:]
            latency = np.mean(self._latencies) if self._latencies else None
        parts = [f"ep {self.counter('learner_node', 'episodes_done'):.0f}"]
        if recent:
            if any(e['max_true_progress'] is not None for e in recent):
                parts.append(f"success {100 * np.mean([e['success'] for e in recent]):.0f}%")
            answered = [e['final_progress'] for e in recent if e['final_progress'] is not None]
            if answered:
                parts.append(f'progress {np.mean(answered):.0f}%')
        parts.append('no reward yet' if latency is None else f'reward latency {latency:.2f}s')
        parts.append(f"updates {self.counter('learner_node', 'updates'):.0f}")
        paused = self.status.get('learner_node', {}).get('learning_paused')
        if paused:
            parts.append(f'learning paused: {paused}')
        stale = self.stale_inputs()
        if stale:
            parts.append(f'holding, no fresh {stale}')
        return ' | '.join(parts)

    def start_video(self, path: Path, fps: float | None = None) -> None:
        """Record the external camera to ``path`` at ``fps`` (None: the frames' stamps say)."""
        self._video = _LazyVideo(Path(path), fps)
        # Kept once made: destroying it while the spinner thread builds a wait set raises
        # InvalidHandle. Reliable where the driver is (camera_qos): best effort got no frame
        # of a reliable 640x480 camera in another process.
        if self._video_sub is None:
            self._video_sub = MatchedSubscription(
                self, Image, 'camera/external/image_raw',
                self.firewall.guard('video', self._image_callback))

    def stop_video(self) -> None:
        video, self._video = self._video, None
        if video is not None:
            video.close()

    def write_ended(self, wait_s: float) -> None:
        """Write the ended episodes now, after up to ``wait_s`` for their results and answers.

        For the curves drawn as the run stops: the lines would otherwise come at ``close``,
        after the plot, and the run's last episodes (its final evaluation's too) be missing.
        """
        deadline = time.monotonic() + min(wait_s, self._answer_wait_s())
        while time.monotonic() < deadline:
            with self._lock:
                if not self._closing:
                    return
            time.sleep(0.05)
        with self._lock:
            for episode in list(self._closing.values()):
                self._write_if_complete(episode, force=True)

    def close(self) -> None:
        with self._lock:
            for episode in [*self._closing.values(), self._episode]:
                if episode is not None:
                    self._write_if_complete(episode, force=True)
            self._closing.clear()
            self._episode = None
            self._lines.close()
        self.stop_video()


class _LazyVideo:
    """An MP4 writer that learns the frame size from the first frame; no frame, no file.

    Without a frame rate it takes the camera's from the first frames' stamps (a fixed 10 fps
    played a 30 fps camera at a third of its speed). Frames come from the executor thread and
    ``close`` from the runner's: one lock, and no frame after ``close`` (FFmpeg segfaults when
    a frame is encoded into a released writer).
    """

    def __init__(self, path: Path, fps: float | None) -> None:
        self._path, self._fps, self._writer = path, fps, None
        self._lock = threading.Lock()
        self._closed = False
        self._first: list[tuple[np.ndarray, float]] = []   # kept until the rate is known

    def write(self, bgr: np.ndarray, stamp_s: float = 0.0) -> None:
        with self._lock:
            if self._closed:
                return
            if self._writer is None and self._fps is None:
                self._first.append((bgr, stamp_s))
                span = stamp_s - self._first[0][1]
                if span < _RATE_FROM_S and len(self._first) < _RATE_FROM_FRAMES:
                    return
                self._fps = _stamp_rate(self._first)
            self._write(bgr)

    def _write(self, bgr: np.ndarray) -> None:
        import cv2
        if self._writer is None:
            self._writer = cv2.VideoWriter(str(self._path), cv2.VideoWriter_fourcc(*'mp4v'),
                                           self._fps, (bgr.shape[1], bgr.shape[0]))
            first, self._first = self._first[:-1] if self._first else [], []
            for frame, _ in first:
                self._writer.write(frame)
        self._writer.write(bgr)

    def close(self) -> None:
        with self._lock:
            if self._writer is None and self._first:   # fewer frames than the rate needs
                self._fps = _stamp_rate(self._first)
                self._write(self._first[-1][0])
            self._closed = True
            if self._writer is not None:
                self._writer.release()


# A video without a given rate takes its camera's from this much of the first frames' stamps.
_RATE_FROM_S, _RATE_FROM_FRAMES = 2.0, 60


def _stamp_rate(frames: list) -> float:
    """Frames per second from the stamps of (frame, stamp) pairs; 10 where they cannot say."""
    span = frames[-1][1] - frames[0][1]
    if len(frames) < 2 or not span > 0:
        return 10.0
    return float(np.clip((len(frames) - 1) / span, 1.0, 120.0))

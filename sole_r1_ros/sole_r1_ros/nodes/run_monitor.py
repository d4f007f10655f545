"""Watch a learning run from its topics: one JSON line per episode, a live summary, a video.

Subscribes ``episode``, ``sole_r1/progress``, ``ground_truth`` (simulator) and
``camera/external/image_raw``; used by ``sole-r1 learn``.
"""
from collections import deque
import json
from pathlib import Path
import threading

import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data, ReliabilityPolicy
from sensor_msgs.msg import Image

from sole_r1_interfaces.msg import Episode, ProgressReward, TaskState
from sole_r1_ros.nodes.conversions import image_to_rgb, ImageConversionError

_LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


class RunMonitorNode(Node):
    """Per-episode predicted and true progress, written as it happens (nothing lost on a crash)."""

    def __init__(self, episodes_jsonl: str | Path, **kwargs) -> None:
        super().__init__('run_monitor', **kwargs)
        self._path = Path(episodes_jsonl)
        self._stream = open(self._path, 'a', encoding='utf-8')
        self._lock = threading.Lock()
        self._episode: dict | None = None
        self.recent: deque = deque(maxlen=20)
        self._latencies: deque = deque(maxlen=50)
        self._video = None
        self.env_steps = 0
        self.create_subscription(Episode, 'episode', self._episode_callback, _LATCHED)
        self.create_subscription(ProgressReward, 'sole_r1/progress', self._progress_callback, 50)
        self.create_subscription(TaskState, 'ground_truth', self._truth_callback, 10)
        self.create_subscription(Image, 'camera/external/image_raw', self._image_callback,
                                 qos_profile_sensor_data)

    def _episode_callback(self, msg: Episode) -> None:
        with self._lock:
            self._close_episode()
            self._episode = {'episode_id': msg.episode_id, 'env_steps': self.env_steps,
                             'progress': [], 'max_true_progress': None, 'success': False}

    def _progress_callback(self, msg: ProgressReward) -> None:
        with self._lock:
            self._latencies.append(msg.latency)
            if self._episode is not None and msg.episode_id == self._episode['episode_id']:
                self._episode['progress'].append(float(msg.progress))
            elif self.recent and self.recent[-1]['episode_id'] == msg.episode_id:
                self.recent[-1]['final_progress'] = float(msg.progress)   # the 'final' query

    def _truth_callback(self, msg: TaskState) -> None:
        with self._lock:
            if self._episode is not None:
                best = self._episode['max_true_progress'] or 0.0
                self._episode['max_true_progress'] = max(best, float(msg.progress))
                self._episode['success'] |= bool(msg.success)

    def _image_callback(self, msg: Image) -> None:
        if self._video is None:
            return
        try:
            frame = image_to_rgb(msg)
        except ImageConversionError:
            return
        self._video.write(np.ascontiguousarray(frame[:, :, ::-1]))

    def _close_episode(self) -> None:
        episode, self._episode = self._episode, None
        if episode is None or not episode['progress']:
            return
        progress = episode.pop('progress')
        episode.update(final_progress=progress[-1], max_progress=max(progress),
                       answers=len(progress))
        self._stream.write(json.dumps(episode) + '\n')
        self._stream.flush()
        self.recent.append(episode)

    def summary(self, learner) -> str:
        """One line: episode, recent success, predicted progress, reward latency, labels."""
        self.env_steps = learner.env_steps
        with self._lock:
            recent = list(self.recent)[-10:]
            latency = np.mean(self._latencies) if self._latencies else float('nan')
        parts = [f'ep {learner.episodes_done}']
        if recent:
            if any(e['max_true_progress'] is not None for e in recent):
                parts.append(f"success {100 * np.mean([e['success'] for e in recent]):.0f}%")
            parts.append(f"progress {np.mean([e['final_progress'] for e in recent]):.0f}%")
        parts.append(f'reward latency {latency:.2f}s')
        parts.append(f'updates {learner.agent.updates}')
        return ' | '.join(parts)

    def start_video(self, path: Path, fps: float = 10.0, size: tuple[int, int] = (0, 0)) -> None:
        self._video_path, self._video_fps = Path(path), fps
        self._video = _LazyVideo(self._video_path, fps)

    def stop_video(self) -> None:
        video, self._video = self._video, None
        if video is not None:
            video.close()

    def close(self) -> None:
        with self._lock:
            self._close_episode()
            self._stream.close()
        self.stop_video()


class _LazyVideo:
    """An MP4 writer that learns the frame size from the first frame."""

    def __init__(self, path: Path, fps: float) -> None:
        self._path, self._fps, self._writer = path, fps, None

    def write(self, bgr: np.ndarray) -> None:
        import cv2
        if self._writer is None:
            self._writer = cv2.VideoWriter(str(self._path), cv2.VideoWriter_fourcc(*'mp4v'),
                                           self._fps, (bgr.shape[1], bgr.shape[0]))
        self._writer.write(bgr)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()

"""ROS-free SOLE-R1 reward engine: protocol, episode state and backends.

Importing this package needs only numpy; OpenCV and Pillow load when an image is built, and
torch, transformers or httpx2 only when their backend is made.

The reward node and ``sole-r1 score`` use::

    from sole_r1_ros.reward import (
        make_backend, ProgressQuery, ProgressResult, RewardConfig, RewardEngine)

    config = RewardConfig(backend='transformers', model='/models/SOLE-R1-8B', temperature=0.0)
    engine = RewardEngine(make_backend(config), config)
    results = engine.score(queries)        # list[ProgressResult], same order, never short
"""
from sole_r1_ros.reward.backends import (
    available_backends, BackendError, make_backend, register_backend)
from sole_r1_ros.reward.config import OpenAIConfig, RewardConfig, TransformersConfig
from sole_r1_ros.reward.engine import RewardEngine, TIMEOUT_ERROR
from sole_r1_ros.reward.episode import (
    EpisodeFrames, EpisodeTracker, offline_query_steps, score_episodes)
from sole_r1_ros.reward.protocol import parse_answer, ParsedAnswer
from sole_r1_ros.reward.query import ProgressQuery, ProgressResult

__all__ = [
    'available_backends', 'BackendError', 'EpisodeFrames', 'EpisodeTracker', 'make_backend',
    'offline_query_steps', 'OpenAIConfig', 'parse_answer', 'ParsedAnswer', 'ProgressQuery',
    'ProgressResult', 'register_backend', 'RewardConfig', 'RewardEngine', 'score_episodes',
    'TIMEOUT_ERROR', 'TransformersConfig',
]

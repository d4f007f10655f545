"""sole_r1_ros: online robot learning with the SOLE-R1 video-language model as the only reward.

Layers, each importable without the ones after it: ``reward`` (protocol, backends), ``rl`` (DrQ-v2,
replay with pending rewards), ``sim`` (Meta-World robot), then the thin ROS 2 ``nodes`` and the
``sole-r1`` command (``cli``).
"""

__version__ = '0.1.0'

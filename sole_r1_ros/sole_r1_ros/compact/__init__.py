"""The compact progress model: SOLE-R1's query answered by a small CNN on one CPU core.

``goals`` (sentence embeddings of the goal text) and ``tiles`` (a query's camera views at
the network's size) need no torch; ``model``, ``predictor`` and ``train`` import torch, so import
them directly where needed. The reward backend is ``reward.backends.compact``; training data are
labelled episodes (``sole_r1_ros.labelled``) of any source.
"""
from sole_r1_ros.compact.goals import GoalEncoder
from sole_r1_ros.compact.tiles import query_views, read_request

__all__ = ['GoalEncoder', 'query_views', 'read_request']

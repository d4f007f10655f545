"""The compact progress model: SOLE-R1's query answered by a small CNN on one CPU core.

``goals`` (sentence embeddings of the goal text) and ``tiles`` (a query's camera views at
the network's size)
need no torch; ``model``, ``predictor`` and ``train`` import torch, so import them directly
where needed. The reward backend is ``reward.backends.compact``.
"""
from sole_r1_ros.compact.goals import EVAL_PARAPHRASES, GoalEncoder, TRAIN_PARAPHRASES
from sole_r1_ros.compact.tiles import query_views, read_request

__all__ = ['EVAL_PARAPHRASES', 'GoalEncoder', 'query_views', 'read_request', 'TRAIN_PARAPHRASES']

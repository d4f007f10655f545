"""Reward-quality evaluation: VOC, Pearson, AUROC and the perceived-vs-true success plot.

numpy only at import; episodes come from ``sole_r1_ros.labelled``, matplotlib loads to plot.
"""
from sole_r1_ros.evaluation.metrics import (
    auroc, pearson, spearman, value_order_correlation)
from sole_r1_ros.evaluation.reward_eval import (
    EpisodeScore, load_episodes, score_with_engine, scores_from_results, summarise)

__all__ = [
    'auroc', 'EpisodeScore', 'load_episodes', 'pearson', 'score_with_engine',
    'scores_from_results', 'spearman', 'summarise', 'value_order_correlation',
]

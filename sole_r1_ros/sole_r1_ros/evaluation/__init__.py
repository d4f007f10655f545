"""Reward-quality evaluation: VOC, Pearson, AUROC and the perceived-vs-true success plot.

numpy only at import; OpenCV loads to read videos and matplotlib to plot.
"""
from sole_r1_ros.evaluation.metrics import (
    auroc, pearson, spearman, value_order_correlation)
from sole_r1_ros.evaluation.reward_eval import (
    EpisodeScore, LabelledEpisode, load_external, load_synthetic, score_with_engine,
    scores_from_results, summarise)

__all__ = [
    'auroc', 'EpisodeScore', 'LabelledEpisode', 'load_external', 'load_synthetic', 'pearson',
    'score_with_engine', 'scores_from_results', 'spearman', 'summarise',
    'value_order_correlation',
]

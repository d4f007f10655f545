"""Labelled episodes: frames, a goal and per-frame progress, from any source, in one layout.

The offline data layer shared by evaluation (``sole-r1 eval reward``), SOLE-R1 fine-tuning
(``sole-r1 finetune prepare``) and the compact model (``sole-r1 train compact``). Synthetic
episodes, SOLE-R1's own scores (``sole-r1 score/score-bag --labelled-out``) and hand labels are
all written and read by ``labelled.folder`` (layout: ``FORMAT.md``); ``labelled.video`` is the
package's one video reader. numpy only at import; OpenCV loads to read or write videos.
"""
from sole_r1_ros.labelled.episode import LabelledEpisode, SUCCESS_PCT
from sole_r1_ros.labelled.folder import (
    iter_episodes, list_episodes, load_episode, load_episodes, select, write_episode)
from sole_r1_ros.labelled.labels import resolve_progress

__all__ = [
    'iter_episodes', 'LabelledEpisode', 'list_episodes', 'load_episode', 'load_episodes',
    'resolve_progress', 'select', 'SUCCESS_PCT', 'write_episode',
]

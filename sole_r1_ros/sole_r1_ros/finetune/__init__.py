"""Fine-tune SOLE-R1 on your own robot: labelled episodes -> SFT -> GRPO -> a reward checkpoint.

ROS-free. Importing this package needs only numpy; torch, transformers, TRL, peft and datasets
load inside ``finetune.trainers`` / ``finetune.model`` when a stage runs::

    from sole_r1_ros.finetune import QuerySchedule, SftConfig, TrainConfig
    from sole_r1_ros.finetune import folder_source, episodes, trainers

    schedule = QuerySchedule(num_queries=10)
    episodes.write_dataset(folder_source.iter_episodes('my_robot', schedule), 'data', schedule)
    trainers.run_sft(SftConfig(TrainConfig(model='/models/SOLE-R1-8B', output_dir='sft')),
                     'data')

``FORMAT.md`` beside this file documents the dataset folder and the input layouts.
"""
from sole_r1_ros.finetune.config import GrpoConfig, SftConfig, TrainConfig
from sole_r1_ros.finetune.dropout import apply_dropout, PreviousDropoutConfig
from sole_r1_ros.finetune.episodes import LabelledEpisode, QuerySchedule
from sole_r1_ros.finetune.examples import read_examples, TrainingExample
from sole_r1_ros.finetune.rewards import (
    accuracy_score, format_score, progress_reward, ProgressRewardConfig)

__all__ = [
    'accuracy_score', 'apply_dropout', 'format_score', 'GrpoConfig', 'LabelledEpisode',
    'PreviousDropoutConfig', 'progress_reward', 'ProgressRewardConfig', 'QuerySchedule',
    'read_examples', 'SftConfig', 'TrainConfig', 'TrainingExample',
]

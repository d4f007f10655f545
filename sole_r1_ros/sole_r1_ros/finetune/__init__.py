"""Fine-tune SOLE-R1 on your own robot: labelled episodes -> SFT -> GRPO -> a reward checkpoint.

ROS-free. Importing this package needs only numpy; torch, transformers, TRL, peft and datasets
load inside ``finetune.trainers`` / ``finetune.model`` when a stage runs::

    from sole_r1_ros import labelled
    from sole_r1_ros.finetune import QuerySchedule, SftConfig, TrainConfig
    from sole_r1_ros.finetune import episodes, trainers

    schedule = QuerySchedule(num_queries=10)
    episodes.write_dataset(labelled.iter_episodes('my_robot', wanted=schedule.steps), 'data',
                           schedule)
    trainers.run_sft(SftConfig(TrainConfig(model='/models/SOLE-R1-8B', output_dir='sft')),
                     'data')

``FORMAT.md`` beside this file documents the dataset folder; the labelled episodes it is made
from are ``sole_r1_ros.labelled`` (``labelled/FORMAT.md``).
"""
from sole_r1_ros.finetune.config import GrpoConfig, SftConfig, TrainConfig
from sole_r1_ros.finetune.dropout import apply_dropout, PreviousDropoutConfig
from sole_r1_ros.finetune.episodes import QuerySchedule
from sole_r1_ros.finetune.examples import read_examples, TrainingExample
from sole_r1_ros.finetune.rewards import (
    accuracy_score, format_score, progress_reward, ProgressRewardConfig)

__all__ = [
    'accuracy_score', 'apply_dropout', 'format_score', 'GrpoConfig',
    'PreviousDropoutConfig', 'progress_reward', 'ProgressRewardConfig', 'QuerySchedule',
    'read_examples', 'SftConfig', 'TrainConfig', 'TrainingExample',
]

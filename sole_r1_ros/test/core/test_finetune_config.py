"""Fine-tuning configs reject bad values early; importing the package stays light."""
import subprocess
import sys

import pytest

from sole_r1_ros.finetune import episodes
from sole_r1_ros.finetune.config import GrpoConfig, SftConfig, TrainConfig


def _train(**changes):
    return TrainConfig(**{'model': 'tiny-random', 'output_dir': 'out', **changes})


@pytest.mark.parametrize('changes, message', [
    ({'model': ''}, 'model'), ({'output_dir': ''}, 'output_dir'),
    ({'method': 'qlora'}, 'method'), ({'bf16': 'yes'}, 'bf16'), ({'device': 'tpu'}, 'device'),
    ({'lr_scheduler': 'cyclic'}, 'lr_scheduler'), ({'learning_rate': 0.0}, 'learning_rate'),
    ({'epochs': float('inf')}, 'epochs'), ({'max_steps': 0}, 'max_steps'),
    ({'batch_size': 0}, 'batch_size'), ({'lora_dropout': 1.0}, 'lora_dropout'),
    ({'lora_targets': ()}, 'lora_targets'), ({'train_vision': True}, 'train_vision'),
    ({'max_examples': 0}, 'max_examples'), ({'save_steps': -1}, 'save_steps'),
])
def test_bad_train_config_names_the_field(changes, message):
    with pytest.raises(ValueError, match=message):
        _train(**changes)


def test_full_tuning_may_train_the_vision_tower():
    assert _train(method='full', train_vision=True).train_vision


def test_grpo_batches_must_hold_whole_groups():
    assert GrpoConfig(_train(batch_size=4, grad_accum=2), num_generations=8)
    with pytest.raises(ValueError, match='multiple of num_generations'):
        GrpoConfig(_train(batch_size=3, grad_accum=1), num_generations=2)
    for changes in ({'num_generations': 1}, {'beta': -0.1}, {'temperature': 0.0},
                    {'top_p': 0.0}, {'max_completion_length': 0}):
        with pytest.raises(ValueError):
            GrpoConfig(_train(), **changes)
    with pytest.raises(ValueError, match='max_length'):
        SftConfig(_train(), max_length=8)


def test_query_schedule_defaults_to_ten_queries():
    assert episodes.QuerySchedule().steps(21) == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    assert episodes.QuerySchedule(stride=4).steps(10) == [4, 8, 9]
    with pytest.raises(ValueError, match='at most one'):
        episodes.QuerySchedule(num_queries=3, stride=2)


def test_importing_the_package_and_the_cli_loads_no_training_stack():
    code = ('import sys, sole_r1_ros.finetune, sole_r1_ros.cli, sole_r1_ros.commands.finetune; '
            "print(sorted(m for m in ('trl', 'peft', 'datasets', 'torch', 'transformers') "
            'if m in sys.modules))')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == '[]'

"""The verifiable GRPO reward: format term, accuracy term, weights and TRL call shape."""
import math
import pickle

import pytest

from sole_r1_ros.finetune import rewards
from sole_r1_ros.finetune.rewards import (
    accuracy_score, format_score, progress_reward, ProgressRewardConfig)

_GOOD = '<think>The drawer moved in.</think><answer>40%</answer>'
_CONFIG = ProgressRewardConfig()


class TestFormat:
    def test_well_formed_reply_scores_one(self):
        assert format_score(_GOOD) == 1.0

    @pytest.mark.parametrize('text', [
        '<think>x</think>  \n<answer> 40% </answer>\n',  # whitespace around and inside
        '\n<think>\nmulti\nline\n</think><answer>-35%</answer>',  # negative progress
        '<think>x</think><answer>+7%</answer>',
        '<think>x</think><answer>100%</answer>',
        '<think>x</think><answer>-100%</answer>',
        '<think>x</think><answer>0%</answer>',
    ])
    def test_accepted_variants(self, text):
        assert format_score(text) == 1.0

    @pytest.mark.parametrize('text', [
        '',
        '40%',
        '<answer>40%</answer>',  # no think block
        '<think>x</think>',  # no answer
        '<think> </think><answer>40%</answer>',  # empty reasoning
        '<think>x</think><answer>40%</answer><answer>50%</answer>',  # two answers
        '<think>x</think><think>y</think><answer>40%</answer>',  # two think blocks
        '<think>x</think><answer>40%</answer',  # unclosed answer
        '<think>x</think><answer>40</answer>',  # no percent sign
        '<think>x</think><answer>40%%</answer>',
        '<think>x</think><answer>%40</answer>',
        '<think>x</think><answer>4 0%</answer>',
        '<think>x</think><answer>40.5%</answer>',  # not an integer
        '<think>x</think><answer>forty%</answer>',
        '<think>x</think><answer>101%</answer>',  # out of range
        '<think>x</think><answer>-101%</answer>',
        'Sure! <think>x</think><answer>40%</answer>',  # text outside the blocks
        '<think>x</think><answer>40%</answer> done',
        '<answer>40%</answer><think>x</think>',  # wrong order
    ])
    def test_rejected_replies_score_zero(self, text):
        assert format_score(text) == 0.0


class TestAccuracy:
    def test_exact_match_is_the_maximum(self):
        assert accuracy_score(_GOOD, 40, _CONFIG) == 1.0
        assert accuracy_score('<answer>-20%</answer>', -20, _CONFIG) == 1.0

    def test_exp_kernel_decays_with_distance(self):
        config = ProgressRewardConfig(tau=10.0)
        values = [accuracy_score(f'<answer>{40 + d}%</answer>', 40, config)
                  for d in (0, 5, 10, 30, 60)]
        assert values == sorted(values, reverse=True)
        assert values[2] == pytest.approx(math.exp(-1))
        assert values[-1] < 0.003  # far away: about zero

    def test_linear_kernel_reaches_zero_at_max_distance(self):
        config = ProgressRewardConfig(kernel='linear', max_distance=50.0)
        assert accuracy_score('<answer>15%</answer>', 40, config) == pytest.approx(0.5)
        assert accuracy_score('<answer>-10%</answer>', 40, config) == 0.0
        assert accuracy_score('<answer>100%</answer>', -100, config) == 0.0

    def test_distance_is_symmetric_and_handles_negative_labels(self):
        above = accuracy_score('<answer>-10%</answer>', -20, _CONFIG)
        below = accuracy_score('<answer>-30%</answer>', -20, _CONFIG)
        assert above == pytest.approx(below) == pytest.approx(math.exp(-1))

    @pytest.mark.parametrize('text', [
        'no tags at all', '<think>x</think>', '<answer>about half</answer>',
        '<answer>40.5%</answer>', '<answer></answer>'])
    def test_unparseable_answer_scores_zero(self, text):
        assert accuracy_score(text, 40, _CONFIG) == 0.0

    def test_answer_is_read_like_the_reward_engine(self):
        # parse_answer: first answer wins, every % dropped, unclosed tag accepted, clamped.
        assert accuracy_score('<answer>40%</answer><answer>90%</answer>', 40, _CONFIG) == 1.0
        assert accuracy_score('<answer> 40 % </answer>', 40, _CONFIG) == 1.0
        assert accuracy_score('<answer>%40</answer>', 40, _CONFIG) == 1.0
        assert accuracy_score('<answer>40%</answer', 40, _CONFIG) == 1.0
        assert accuracy_score('<answer>150%</answer>', 100, _CONFIG) == 1.0
        assert format_score('<think>x</think><answer>150%</answer>') == 0.0

    def test_float_labels_are_accepted(self):
        assert accuracy_score('<answer>40%</answer>', 42.5, _CONFIG) == pytest.approx(
            math.exp(-0.25))


class TestWeights:
    def test_total_is_the_weighted_sum(self):
        config = ProgressRewardConfig(format_weight=0.3, accuracy_weight=2.0)
        assert progress_reward(_GOOD, 40, config) == pytest.approx(2.3)
        assert progress_reward(_GOOD, 50, config) == pytest.approx(0.3 + 2 * math.exp(-1))
        # Right number, broken format: only the accuracy term pays.
        assert progress_reward('<answer>40</answer>', 40, config) == pytest.approx(2.0)
        assert progress_reward('garbage', 40, config) == 0.0

    def test_format_only_and_accuracy_only(self):
        format_only = ProgressRewardConfig(format_weight=1.0, accuracy_weight=0.0)
        accuracy_only = ProgressRewardConfig(format_weight=0.0, accuracy_weight=1.0)
        far = '<think>x</think><answer>-100%</answer>'
        assert progress_reward(far, 100, format_only) == 1.0
        assert progress_reward(far, 100, accuracy_only) < 1e-8

    @pytest.mark.parametrize('kwargs', [
        {'format_weight': -0.1}, {'accuracy_weight': float('nan')},
        {'format_weight': 0.0, 'accuracy_weight': 0.0}, {'kernel': 'gauss'}, {'tau': 0.0},
        {'max_distance': -5.0}])
    def test_bad_config_raises(self, kwargs):
        with pytest.raises(ValueError):
            ProgressRewardConfig(**kwargs)


class TestTrlCallables:
    def test_batch_in_floats_out_with_conversational_completions(self):
        functions, weights = rewards.make_reward_functions(
            ProgressRewardConfig(format_weight=0.5, accuracy_weight=1.0))
        completions = [[{'role': 'assistant', 'content': _GOOD}],
                       [{'role': 'assistant', 'content': [{'type': 'text', 'text': _GOOD}]}],
                       [{'role': 'assistant', 'content': 'nothing'}]]
        labels = [40, 60, 40]
        format_values = functions[0](completions=completions, progress=labels, prompts=[None])
        accuracy_values = functions[1](completions=completions, progress=labels, log_extra=None)
        assert weights == [0.5, 1.0]
        assert format_values == [1.0, 1.0, 0.0]
        assert accuracy_values == pytest.approx([1.0, math.exp(-2), 0.0])
        assert [f.__name__ for f in functions] == ['progress_format', 'progress_accuracy']

    def test_plain_string_completions_work(self):
        [_, accuracy] = rewards.make_reward_functions(_CONFIG)[0]
        assert accuracy(completions=[_GOOD], progress=[40]) == [1.0]

    def test_label_count_must_match(self):
        [_, accuracy] = rewards.make_reward_functions(_CONFIG)[0]
        with pytest.raises(ValueError, match='2 completions but 1 labels'):
            accuracy(completions=[_GOOD, _GOOD], progress=[40])

    def test_reward_functions_pickle(self):
        functions, _ = rewards.make_reward_functions(ProgressRewardConfig(tau=3.0))
        restored = pickle.loads(pickle.dumps(functions))
        assert restored[1].config.tau == 3.0
        assert restored[1](completions=['<answer>43%</answer>'], progress=[40]) == [
            pytest.approx(math.exp(-1))]

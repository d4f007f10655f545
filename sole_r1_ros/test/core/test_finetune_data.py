"""Training examples: labels, targets, the on-disk format, dropout and the TRL dataset rows."""
import dataclasses
import json

import numpy as np
import pytest

pytest.importorskip('cv2')

from sole_r1_ros.finetune import dropout, episodes, examples, targets  # noqa: E402
from sole_r1_ros.finetune.dropout import apply_dropout, PreviousDropoutConfig  # noqa: E402
from sole_r1_ros.labelled import labels, LabelledEpisode  # noqa: E402
from sole_r1_ros.reward import protocol  # noqa: E402

_GOAL = 'Close the drawer'


def _frames(count, seed, shape=(48, 64, 3)):
    rng = np.random.default_rng(seed)
    return {i: rng.integers(0, 255, shape, dtype=np.uint8) for i in range(count)}


def _episode(episode_id='ep-1', wrist=True, progress=(0, 10, 25, 40, 70, 100)):
    count = len(progress)
    return LabelledEpisode(
        episode_id, _GOAL + '.', list(progress), _frames(count, 1),
        _frames(count, 2, (64, 48, 3)) if wrist else None)


def _example(**changes):
    fields = dict(example_id='e-000004', episode_id='e', step=4, previous_step=2,
                  image='images/e-000004.png', goal=_GOAL, previous_progress=25, progress=70)
    return examples.TrainingExample(**{**fields, **changes})


# ---------------------------------------------------------------- labels and targets
class TestLabels:
    def test_per_frame_labels_are_kept_and_rounded_in_examples(self, tmp_path):
        assert labels.resolve_progress({'progress': [0, 10.4, 10.6, -3]}, [0, 1, 2, 3],
                                       'ep') == pytest.approx([0, 10.4, 10.6, -3])
        episode = _episode(progress=(0, 10.4, 10.6, -3, 49.5, 99.6))
        made = [e for e, _ in episodes.episode_examples(
            episode, episodes.QuerySchedule(stride=1))]
        assert [(e.previous_progress, e.progress) for e in made] == [
            (0, 10), (10, 11), (11, -3), (-3, 50), (50, 100)]

    def test_keypoints_are_interpolated_in_time_and_held_after_the_last(self):
        entry = {'time_s': [0.0, 2.0], 'progress': [0, 100], 'task': 'ignored here'}
        assert labels.resolve_progress(entry, [0.0, 0.5, 1.0, 2.0, 3.0], 'ep') == [
            0, 25, 50, 100, 100]

    @pytest.mark.parametrize('entry, message', [
        ({'progress': [0, 10]}, '2 progress labels for 3 frames'),
        ({'progress': [20, 30, 40]}, 'first frame is labelled 20'),
        ({'progress': [0, 50, 101]}, 'outside'),
        ({'progress': [0, float('nan'), 1]}, 'finite'),
        ({'progress': 'fast'}, 'need a "progress" list'),
        ({'time_s': [0, 2, 1], 'progress': [0, 5, 9]}, 'increase strictly'),
        ({'time_s': [0, 1], 'progress': [0]}, 'equally long'),
    ])
    def test_bad_labels_raise_naming_the_episode(self, entry, message):
        with pytest.raises(ValueError, match=message) as info:
            labels.resolve_progress(entry, [0.0, 0.1, 0.2], 'episode ep-9')
        assert 'episode ep-9' in str(info.value)


class TestTargets:
    def test_completion_ends_in_the_label_and_parses(self):
        text = _example().completion()
        assert text.startswith('<think>The task is: Close the drawer. The previous timestep '
                               'was at 25%.')
        assert text.endswith('</think><answer>70%</answer>')
        assert protocol.parse_answer(text).progress == 70

    def test_reasoning_describes_losses_steady_and_from_zero(self):
        assert 'lost progress (-15 points)' in targets.templated_reasoning(_GOAL, 10, 25)
        assert 'made no clear change' in targets.templated_reasoning(_GOAL, 26, 25)
        from_zero = targets.templated_reasoning(_GOAL, 30, None)
        assert 'previous' not in from_zero and 'Since the first timestep' in from_zero

    def test_given_reasoning_is_used_verbatim(self):
        assert _example(reasoning=' Drawer half shut. ').completion() == (
            '<think>Drawer half shut.</think><answer>70%</answer>')


# ---------------------------------------------------------------- on-disk format
class TestExamples:
    def test_invalid_fields_raise(self):
        with pytest.raises(ValueError, match='previous_step < step'):
            _example(previous_step=4)
        with pytest.raises(ValueError, match='not normalised'):
            _example(goal='Close the drawer.')
        with pytest.raises(ValueError, match='progress'):
            _example(progress=120)

    def test_round_trip_and_drift_detection(self, tmp_path):
        schedule = episodes.QuerySchedule(num_queries=2)
        assert episodes.write_dataset(iter([_episode()]), str(tmp_path / 'd'), schedule) == 2
        loaded = examples.read_examples(str(tmp_path / 'd'))
        assert [(e.previous_step, e.step) for e in loaded] == [(0, 2), (2, 5)]
        assert [(e.previous_progress, e.progress) for e in loaded] == [(0, 25), (25, 100)]
        lines = (tmp_path / 'd' / examples.EXAMPLES).read_text().splitlines()
        record = json.loads(lines[1])
        assert record['messages'] == protocol.build_messages(_GOAL, 25)
        record['messages'][1]['content'][1]['text'] += ' '  # one byte of drift
        (tmp_path / 'd' / examples.EXAMPLES).write_text(lines[0] + '\n' + json.dumps(record))
        with pytest.raises(ValueError, match='stored prompt differs'):
            examples.read_examples(str(tmp_path / 'd'))

    def test_stored_composite_is_the_protocol_composite(self, tmp_path):
        from PIL import Image

        episode = _episode()
        schedule = episodes.QuerySchedule(stride=2)
        episodes.write_dataset(iter([episode]), str(tmp_path / 'd'), schedule)
        last = examples.read_examples(str(tmp_path / 'd'))[-1]
        assert (last.previous_step, last.step) == (4, 5)
        stored = np.asarray(Image.open(tmp_path / 'd' / last.image))
        expected = protocol.build_composite(
            episode.external[0], episode.external[4], episode.external[5],
            episode.wrist[0], episode.wrist[4], episode.wrist[5])
        assert np.array_equal(stored, expected)

    def test_existing_dataset_is_not_overwritten(self, tmp_path):
        schedule = episodes.QuerySchedule(num_queries=1)
        episodes.write_dataset(iter([_episode()]), str(tmp_path), schedule)
        with pytest.raises(FileExistsError):
            episodes.write_dataset(iter([_episode()]), str(tmp_path), schedule)

    def test_a_failed_preparation_leaves_no_dataset_and_can_be_run_again(self, tmp_path):
        schedule = episodes.QuerySchedule(num_queries=2)
        broken = dataclasses.replace(_episode('ep-2'), external={0: _episode().external[0]})
        with pytest.raises(ValueError, match='external frame'):
            episodes.write_dataset(iter([_episode(), broken]), str(tmp_path), schedule)
        with pytest.raises(FileNotFoundError, match='not a fine-tuning dataset'):
            examples.read_examples(str(tmp_path))        # half of it is never trained on
        assert episodes.write_dataset(iter([_episode()]), str(tmp_path), schedule) == 2

    def test_missing_frame_and_duplicate_episode_raise(self, tmp_path):
        sparse = dataclasses.replace(_episode(), external={0: _episode().external[0]})
        with pytest.raises(ValueError, match='external frame'):
            list(episodes.episode_examples(sparse, episodes.QuerySchedule(num_queries=1)))
        with pytest.raises(ValueError, match='appears twice'):
            episodes.write_dataset(iter([_episode(), _episode()]), str(tmp_path / 'd'),
                                   episodes.QuerySchedule(num_queries=1))

    def test_prepare_says_when_no_episode_is_kept_for_evaluation(self, tmp_path, capsys):
        """Unmarked episodes all train, and eval reward's --split val then scored them."""
        from sole_r1_ros import labelled
        from sole_r1_ros.cli import main
        for name in ('ep-a', 'ep-b'):
            labelled.write_episode(str(tmp_path / 'mine'), _episode(name))
        assert main(['finetune', 'prepare', '--episodes', str(tmp_path / 'mine'), '--out',
                     str(tmp_path / 'd'), '--num-queries', '2']) == 0
        assert 'no episode of' in capsys.readouterr().err
        labelled.write_episode(str(tmp_path / 'marked'), _episode('ep-a'))
        labelled.write_episode(str(tmp_path / 'marked'),
                               dataclasses.replace(_episode('ep-b'), split='val'))
        assert main(['finetune', 'prepare', '--episodes', str(tmp_path / 'marked'), '--out',
                     str(tmp_path / 'd2'), '--num-queries', '2']) == 0
        assert 'no episode of' not in capsys.readouterr().err

    def test_an_episode_too_short_to_query_is_skipped_and_named(self, tmp_path, caplog):
        """One 1-frame episode among good ones ended the prepare, naming none."""
        short = dataclasses.replace(_episode('ep-short', progress=(0,)), wrist=None)
        count = episodes.write_dataset(iter([short, _episode('ep-good')]), str(tmp_path / 'd'),
                                       episodes.QuerySchedule(num_queries=2))
        assert count == 2 and 'episode ep-short: 1 frame(s), nothing to query' in caplog.text


# ---------------------------------------------------------------- previous-progress dropout
class TestDropout:
    def test_from_zero_variant_is_the_exact_protocol_prompt(self):
        for external_only in (False, True):
            example = _example(external_only=external_only)
            dropped = apply_dropout(example, PreviousDropoutConfig(from_zero_p=1.0))
            assert dropped.from_zero and dropped.previous_progress == 25
            assert dropped.messages() == protocol.build_messages(
                _GOAL, from_zero=True, external_only=external_only)
            system, user = protocol.message_texts(dropped.messages())
            assert system == protocol.SYSTEM_PROMPT_TEMPLATE
            template = (protocol.USER_QUESTION_EXTERNAL_VIEW_FROM_ZERO_TEMPLATE if external_only
                        else protocol.USER_QUESTION_FROM_ZERO_TEMPLATE)
            assert user == template.format(task_description=_GOAL)
            assert 'previous' not in dropped.completion()

    def test_from_zero_variant_drops_reasoning_about_the_previous_frame(self):
        """The from-zero prompt shows no previous frame: reasoning about it is replaced.

        A synth export stores reasoning that compares with the previous frame; the template's
        from-zero reasoning takes its place.
        """
        stored = ('Between the previous and the current frame the gripper moved about 5 cm '
                  'right. Compared with the previous timestep, more of the task is done.')
        dropped = apply_dropout(_example(reasoning=stored),
                                PreviousDropoutConfig(from_zero_p=1.0))
        assert dropped.from_zero and 'previous' not in dropped.completion()

    def test_jittered_variant_is_the_exact_protocol_prompt(self):
        config = PreviousDropoutConfig(jitter_p=1.0, jitter_max=7)
        shifts = set()
        for index in range(200):
            example = _example(example_id=f'e-{index}')
            dropped = apply_dropout(example, config)
            shift = dropped.previous_progress - example.previous_progress
            assert 1 <= abs(shift) <= 7 and not dropped.from_zero
            _, user = protocol.message_texts(dropped.messages())
            assert user == protocol.USER_QUESTION_TEMPLATE.format(
                task_description=_GOAL, prev_progress=dropped.previous_progress)
            assert f'previous timestep was at {dropped.previous_progress}%' in (
                dropped.completion())
            shifts.add(shift)
        assert shifts == {s for s in range(-7, 8) if s}

    def test_the_first_query_is_never_jittered(self):
        """Its previous frame is the first, 0 % by definition.

        "Previous 6 %" beside it is a prompt the reward node never sends (59 of 200 first
        queries at --jitter-dropout 0.3).
        """
        config = PreviousDropoutConfig(jitter_p=1.0)
        first = [_example(example_id=f'f-{i}', step=2, previous_step=0, previous_progress=0)
                 for i in range(50)]
        assert all(apply_dropout(e, config).previous_progress == 0 for e in first)

    def test_jitter_is_clamped_to_the_protocol_range(self):
        config = PreviousDropoutConfig(jitter_p=1.0, jitter_max=200)
        values = {apply_dropout(_example(example_id=f'x{i}', previous_progress=95), config)
                  .previous_progress for i in range(100)}
        assert max(values) == 100 and min(values) >= -100

    def test_choice_is_fixed_per_example_and_seed_and_matches_p(self):
        config = PreviousDropoutConfig(from_zero_p=0.3, jitter_p=0.2, seed=3)
        ids = [f'ep-{i:05d}' for i in range(2000)]
        first = [apply_dropout(_example(example_id=i), config) for i in ids]
        again = [apply_dropout(_example(example_id=i), config) for i in ids]
        assert first == again
        from_zero = sum(e.from_zero for e in first) / len(ids)
        jittered = sum(e.previous_progress != 25 for e in first) / len(ids)
        assert 0.26 < from_zero < 0.34 and 0.16 < jittered < 0.24
        other_seed = [apply_dropout(_example(example_id=i), dataclasses.replace(config, seed=4))
                      for i in ids]
        assert other_seed != first

    def test_off_or_already_from_zero_leaves_examples_alone(self):
        example = _example()
        assert apply_dropout(example, PreviousDropoutConfig()) is example
        from_zero = _example(from_zero=True)
        assert apply_dropout(from_zero, PreviousDropoutConfig(jitter_p=1.0)) is from_zero

    @pytest.mark.parametrize('kwargs', [{'from_zero_p': 1.5}, {'jitter_p': -0.1},
                                        {'from_zero_p': 0.6, 'jitter_p': 0.6},
                                        {'jitter_max': 0}])
    def test_bad_config_raises(self, kwargs):
        with pytest.raises(ValueError):
            PreviousDropoutConfig(**kwargs)

    @pytest.mark.parametrize('wrist', [True, False])
    def test_from_zero_composite_is_cut_exactly(self, wrist):
        ext, wri = _frames(3, 5), _frames(3, 6, (30, 90, 3))
        wrists = [wri[0], wri[1], wri[2]] if wrist else [None] * 3
        full = protocol.build_composite(ext[0], ext[1], ext[2], *wrists)
        expected = protocol.build_composite(ext[0], ext[1], ext[2], *wrists, from_zero=True)
        assert np.array_equal(dropout.from_zero_composite(full), expected)
        with pytest.raises(ValueError, match='three-column'):
            dropout.from_zero_composite(expected)


# ---------------------------------------------------------------- TRL dataset rows
class TestDatasetRows:
    @pytest.fixture
    def data(self, tmp_path):
        pytest.importorskip('datasets')
        episode = _episode()
        schedule = episodes.QuerySchedule(num_queries=2)
        episodes.write_dataset(iter([episode]), str(tmp_path / 'd'), schedule)
        return str(tmp_path / 'd'), episode

    def test_sft_row_is_prompt_image_and_completion(self, data):
        from sole_r1_ros.finetune.dataset import build_dataset

        root, episode = data
        row = build_dataset(root, 'sft')[1]
        assert row['prompt'] == protocol.build_messages(_GOAL, 25)
        assert row['completion'] == [{'role': 'assistant', 'content': (
            examples.read_examples(root)[1].completion())}]
        assert row['progress'] == 100
        expected = protocol.to_model_image(protocol.build_composite(
            episode.external[0], episode.external[2], episode.external[5],
            episode.wrist[0], episode.wrist[2], episode.wrist[5]))
        [image] = row['images']
        assert image.size == (1176, 784)
        assert np.array_equal(np.asarray(image), np.asarray(expected))

    def test_grpo_row_with_from_zero_dropout(self, data):
        from sole_r1_ros.finetune.dataset import build_dataset

        root, episode = data
        dataset = build_dataset(root, 'grpo', PreviousDropoutConfig(from_zero_p=1.0))
        row = dataset[1]
        assert 'completion' not in row and row['progress'] == 100
        assert row['prompt'] == protocol.build_messages(_GOAL, from_zero=True)
        expected = protocol.to_model_image(protocol.build_composite(
            episode.external[0], episode.external[5], episode.external[5], episode.wrist[0],
            episode.wrist[5], episode.wrist[5], from_zero=True))
        assert np.array_equal(np.asarray(row['images'][0]), np.asarray(expected))
        assert len(build_dataset(root, 'grpo', max_examples=1)) == 1

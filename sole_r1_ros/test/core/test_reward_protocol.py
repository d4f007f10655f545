"""reward.protocol against the authors' reference code: pixels, prompt bytes and parsing."""
import os
import sys

import numpy as np
import pytest

from sole_r1_ros.reward import protocol

sys.path.insert(0, os.path.dirname(__file__))
import reference_sole_r1 as ref  # noqa: E402 - test fixture beside this file

# (height, width) of camera frames: square, landscape, portrait, odd, tiny, and extreme ratios.
_SIZES = [(480, 640), (640, 480), (384, 384), (100, 100), (37, 251), (251, 37), (720, 1280),
          (2, 400), (3, 2), (999, 1001)]


def _frames(rng, size, count):
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(count)]


@pytest.mark.parametrize('size', _SIZES)
def test_letterbox_matches_reference_pixel_for_pixel(size):
    rng = np.random.default_rng(sum(size))
    [frame] = _frames(rng, size, 1)
    assert np.array_equal(protocol.letterbox(frame), ref.resize_with_padding(frame))


# external-only + from_zero has its own test below.
@pytest.mark.parametrize('from_zero,external_only',
                         [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize('ext_size,wrist_size',
                         [((480, 640), (240, 320)), ((720, 1280), (480, 480)),
                          ((37, 251), (300, 90))])
def test_composite_matches_reference_pixel_for_pixel(from_zero, external_only, ext_size,
                                                     wrist_size):
    rng = np.random.default_rng(ext_size[0])
    ext = _frames(rng, ext_size, 3)
    wrist = _frames(rng, wrist_size, 3)
    ours = protocol.build_composite(*ext, *(None, None, None) if external_only else wrist,
                                    from_zero=from_zero)
    theirs = ref.create_composite_frame(wrist[0], ext[0], wrist[1], ext[1], wrist[2], ext[2],
                                        from_zero=from_zero, external_only=external_only)
    assert ours.shape == theirs.shape
    assert np.array_equal(ours, theirs)


def test_external_only_from_zero_shows_first_and_current_only():
    rng = np.random.default_rng(3)
    first, previous, current = _frames(rng, (480, 640), 3)
    composite = protocol.build_composite(first, previous, current, from_zero=True)
    assert composite.shape == (384, 773, 3)
    # The reference returns the same top row here; only its prompt text was wrong.
    wrist = _frames(rng, (480, 640), 3)
    theirs = ref.create_composite_frame(wrist[0], first, wrist[1], previous, wrist[2], current,
                                        from_zero=True, external_only=True)
    assert np.array_equal(composite, theirs)


@pytest.mark.parametrize('wrist,from_zero,composite_shape,model_size', [
    (True, False, (773, 1162, 3), (1176, 784)),
    (True, True, (773, 773, 3), (784, 784)),
    (False, False, (384, 1162, 3), (1176, 392)),
    (False, True, (384, 773, 3), (784, 392)),
])
def test_variant_geometry(wrist, from_zero, composite_shape, model_size):
    rng = np.random.default_rng(0)
    ext = _frames(rng, (48, 64), 3)
    wrists = _frames(rng, (64, 48), 3) if wrist else [None] * 3
    composite = protocol.build_composite(*ext, *wrists, from_zero=from_zero)
    assert composite.shape == composite_shape
    assert protocol.to_model_image(composite).size == model_size


def test_composite_layout_external_top_wrist_bottom_first_previous_current():
    colours = [(200, 0, 0), (0, 200, 0), (0, 0, 200), (200, 200, 0), (0, 200, 200),
               (200, 0, 200)]
    ext_first, ext_prev, ext_cur, wr_first, wr_prev, wr_cur = [
        np.full((50, 50, 3), c, np.uint8) for c in colours]
    composite = protocol.build_composite(ext_first, ext_prev, ext_cur, wr_first, wr_prev,
                                         wr_cur)
    centre, step, row = 192, 384 + 5, 384 + 5
    assert tuple(composite[centre, centre]) == colours[0]
    assert tuple(composite[centre, step + centre]) == colours[1]
    assert tuple(composite[centre, 2 * step + centre]) == colours[2]
    assert tuple(composite[row + centre, centre]) == colours[3]
    assert tuple(composite[row + centre, step + centre]) == colours[4]
    assert tuple(composite[row + centre, 2 * step + centre]) == colours[5]
    assert not composite[384:389].any() and not composite[:, 384:389].any()


@pytest.mark.parametrize('from_zero', [False, True])
def test_model_image_matches_reference_resize(from_zero):
    rng = np.random.default_rng(11)
    frames = _frames(rng, (480, 640), 6)
    composite = protocol.build_composite(*frames, from_zero=from_zero)
    ours = protocol.to_model_image(composite)
    theirs = ref.prepare_vlm_image(composite)
    assert ours.size == theirs.size
    assert np.array_equal(np.asarray(ours), np.asarray(theirs))


def test_smart_resize_matches_qwen_vl_utils_on_many_sizes():
    rng = np.random.default_rng(5)
    sizes = [(773, 1162), (773, 773), (384, 1162), (384, 773), (28, 28), (14, 14),
             (1, 150), (5000, 4000), (10000, 10000), (56, 57), (42, 70)]
    sizes += [tuple(int(v) for v in rng.integers(1, 4000, 2)) for _ in range(300)]
    for height, width in sizes:
        if max(height, width) / min(height, width) > 200:
            continue
        assert protocol.smart_resize(height, width) == ref.smart_resize(
            height, width, factor=28, min_pixels=3136, max_pixels=12845056), (height, width)


def test_smart_resize_rejects_extreme_aspect_ratio_like_reference():
    with pytest.raises(ValueError):
        ref.smart_resize(1, 300)
    with pytest.raises(ValueError, match='aspect ratio'):
        protocol.smart_resize(1, 300)


@pytest.mark.parametrize('grey_shape', [(60, 80), (60, 80, 1)])
def test_grey_frames_letterbox_like_their_rgb_expansion(grey_shape):
    rng = np.random.default_rng(9)
    grey = rng.integers(0, 256, grey_shape, dtype=np.uint8)
    rgb = np.repeat(grey.reshape(60, 80, 1), 3, axis=2)
    assert np.array_equal(protocol.letterbox(grey), ref.resize_with_padding(rgb))


@pytest.mark.parametrize('frame,match', [
    (np.zeros((10, 10, 3), np.float32), 'uint8'),
    (np.zeros((10, 10, 4), np.uint8), 'channels'),
    (np.zeros((2, 10, 10, 3), np.uint8), 'HxWx3'),
    (np.zeros((10,), np.uint8), 'HxWx3'),
    (np.zeros((0, 10, 3), np.uint8), 'zero size'),
    ([[0, 0, 0]], 'numpy array'),
    (np.zeros((1, 1000, 3), np.uint8), 'too thin'),
])
def test_malformed_frames_raise_value_error_naming_the_problem(frame, match):
    with pytest.raises(ValueError, match=match):
        protocol.letterbox(frame, name='current_external')


def test_partial_wrist_frames_are_rejected():
    frame = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match='all three wrist frames'):
        protocol.build_composite(frame, frame, frame, frame, None, frame)


@pytest.mark.parametrize('name', ['SYSTEM_PROMPT_TEMPLATE', 'USER_QUESTION_TEMPLATE',
                                  'USER_QUESTION_FROM_ZERO_TEMPLATE',
                                  'USER_QUESTION_EXTERNAL_VIEW_TEMPLATE'])
def test_prompt_constants_are_byte_identical_to_reference(name):
    assert getattr(protocol, name).encode('utf-8') == getattr(ref, name).encode('utf-8')


@pytest.mark.parametrize('from_zero,external_only,template', [
    (False, False, 'USER_QUESTION_TEMPLATE'),
    (True, False, 'USER_QUESTION_FROM_ZERO_TEMPLATE'),
    (False, True, 'USER_QUESTION_EXTERNAL_VIEW_TEMPLATE'),
])
def test_user_prompt_equals_reference_format(from_zero, external_only, template):
    ours = protocol.build_user_prompt('Pick up the cube.', 37, from_zero, external_only)
    theirs = getattr(ref, template).format(task_description='Pick up the cube',
                                           prev_progress=37)
    assert ours == theirs


def test_external_only_from_zero_prompt_names_no_middle_column():
    prompt = protocol.build_user_prompt('Open the door', 0, from_zero=True, external_only=True)
    assert 'middle' not in prompt and 'previous timestep' not in prompt
    assert 'to the left' in prompt and 'to the right' in prompt
    assert 'top' not in prompt and 'wrist' not in prompt
    assert 'middle' in ref.USER_QUESTION_EXTERNAL_VIEW_FROM_ZERO_TEMPLATE  # the defect we fix


@pytest.mark.parametrize('goal,task', [
    ('Close the drawer.', 'Close the drawer'), ('  Close the drawer  ', 'Close the drawer'),
    ('Close the drawer. ', 'Close the drawer'), ('Press 2.5 cm', 'Press 2.5 cm'),
    ('Wait.. ', 'Wait'),
])
def test_goal_trailing_period_is_stripped_before_the_templates_period(goal, task):
    prompt = protocol.build_user_prompt(goal, 0)
    assert f'The task description is: {task}. The task' in prompt
    assert protocol.normalize_goal(protocol.normalize_goal(goal)) == task


@pytest.mark.parametrize('goal', ['', '   ', '.', ' . ', '\n'])
def test_empty_goal_raises_clear_value_error(goal):
    with pytest.raises(ValueError, match='goal is empty'):
        protocol.build_messages(goal)


def test_messages_are_system_then_user_with_image_first():
    messages = protocol.build_messages('Close the drawer', 12)
    assert [m['role'] for m in messages] == ['system', 'user']
    assert messages[0]['content'] == ref.SYSTEM_PROMPT_TEMPLATE
    content = messages[1]['content']
    assert content[0] == {'type': 'image'}
    assert content[1]['type'] == 'text' and 'previous timestep is 12%' in content[1]['text']
    assert protocol.message_texts(messages) == (ref.SYSTEM_PROMPT_TEMPLATE, content[1]['text'])


@pytest.mark.parametrize('value', [101, -101, 12.0, True, '5'])
def test_previous_progress_must_be_an_integer_in_range(value):
    with pytest.raises(ValueError, match='previous_progress'):
        protocol.build_user_prompt('Close the drawer', value)


# Replies on which our parser must agree with the reference parser + carry-forward.
_REPLIES = [
    '<think>moving</think><answer>42%</answer>', '<answer>42</answer>', '<answer> 7 % </answer>',
    '<answer>-35%</answer>', '<answer>150%</answer>', '<answer>-250</answer>',
    '<answer>100%</answer>', '<answer>+12%</answer>', '<answer>0</answer>',
    '<answer>\n55\n</answer>', '<answer>60%</answer', '<answer>61%</answer> <answer>9</answer>',
    '<answer>12.5%</answer>', '<answer>about half</answer>', '<answer></answer>', 'no tags',
    '<answer>50', '', '<think>unfinished', '<answer>1_000</answer>', '<answer>%%3%%</answer>',
    '<ANSWER>5</ANSWER>', '<answer>5</ans>', '<answer>٣٣</answer>', '<answer>0x10</answer>',
    '<answer>42%</answer><answer>oops', '<answer><answer>8</answer>',
    '<think>done</think><answer>50%</answer></think>',
    '<think>a</think><answer>9</answer></think>x',
]


def test_parser_agrees_with_reference_on_edge_cases():
    reference_answers = [ref.get_answer_from_completion(text) for text in _REPLIES]
    reference_progress = ref.carry_forward(reference_answers)[1:]
    previous = 0
    for text, expected in zip(_REPLIES, reference_progress):
        parsed = protocol.parse_answer(text, previous)
        assert parsed.progress == expected, text
        previous = parsed.progress


def test_valid_flag_marks_replies_the_reference_could_read_as_integer():
    for text in _REPLIES:
        answer = ref.get_answer_from_completion(text)
        try:
            int(answer)
            readable = True
        except ValueError:
            readable = False
        assert protocol.parse_answer(text).valid == readable, text


def test_answer_quoted_inside_reasoning_is_never_taken():
    for text in ('<think>it said <answer>100%</answer></think>',
                 'it said <answer>100%</answer></think>',
                 '<think>a</think><think>it said <answer>100%</answer></think>'):
        assert protocol.parse_answer(text, 20) == protocol.ParsedAnswer(
            20, False, protocol.extract_reasoning(text)), text


def test_unparseable_answer_keeps_previous_progress_and_is_invalid():
    parsed = protocol.parse_answer('<think>hmm</think><answer>a lot</answer>', 37)
    assert (parsed.progress, parsed.valid) == (37, False)


def test_carried_forward_integer_feeds_next_prompt_not_the_raw_string():
    first = protocol.parse_answer('<answer>40%</answer>', 0)
    second = protocol.parse_answer('<answer>unclear</answer>', first.progress)
    prompt = protocol.build_user_prompt('Close the drawer', second.progress)
    assert 'previous timestep is 40%.' in prompt
    # The reference would have quoted its raw answer string instead.
    assert ref.get_answer_from_completion('<answer>unclear</answer>') == 'unclear'


def test_answer_is_clamped_to_plus_minus_100():
    assert protocol.parse_answer('<answer>250%</answer>').progress == 100
    assert protocol.parse_answer('<answer>-250%</answer>').progress == -100


@pytest.mark.parametrize('text,reasoning', [
    ('<think> The gripper is closer. </think><answer>10%</answer>', 'The gripper is closer.'),
    ('It moved.<answer>10%</answer>', 'It moved.'),
    ('<think>cut short <answer>10%</answer>', 'cut short'),
    ('no answer at all', 'no answer at all'),
    ('<think>a\nb</think>', 'a\nb'),
])
def test_reasoning_is_think_text_else_text_before_answer(text, reasoning):
    assert protocol.parse_answer(text).reasoning == reasoning


def test_prompt_hash_changes_with_prompt_text_only():
    system, user = protocol.message_texts(protocol.build_messages('Close the drawer', 5))
    same = protocol.message_texts(protocol.build_messages('Close the drawer.', 5))
    other = protocol.message_texts(protocol.build_messages('Close the drawer', 6))
    assert protocol.prompt_hash(system, user) == protocol.prompt_hash(*same)
    assert protocol.prompt_hash(system, user) != protocol.prompt_hash(*other)
    assert len(protocol.prompt_hash(system, user)) == 16


def test_docstring_examples_hold():
    import doctest

    from sole_r1_ros.reward import episode

    for module in (protocol, episode):
        assert doctest.testmod(module).failed == 0, module.__name__

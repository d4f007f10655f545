"""The SOLE-R1 query protocol: composite image, prompt text and answer parsing.

The released checkpoint only works on the input format it was trained on, so every value here
follows the authors' reward server (philipmit/sole-r1-model, MIT, commit 71a61c5) pixel for pixel
and byte for byte; ``test/core/test_reward_protocol.py`` checks that against a copy of their code.
Two of their defects are fixed on purpose: the external-only + from-zero prompt names no middle
column, and an unparseable answer feeds the carried-forward integer into the next prompt.
numpy is the only import at module level; OpenCV and Pillow load when an image is built.
"""
from dataclasses import dataclass
import hashlib
import math
import numbers
import re
import unicodedata
from typing import Any, TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

TILE_PX = 384
'''Side of the black square each camera view is letterboxed into [px].'''
GAP_PX = 5
'''Black gap between columns and between the two rows [px].'''
RESIZE_FACTOR = 28
'''qwen_vl_utils ``smart_resize`` factor the authors used (Qwen2.5-VL's 14 px patch x merge 2).'''
MIN_PIXELS = 3136
MAX_PIXELS = 12845056
MAX_ASPECT_RATIO = 200
PROGRESS_MIN = -100
PROGRESS_MAX = 100

# The four prompt constants of the authors' constants.py, byte for byte (split only for the line
# length). They are templates for str.format with {task_description} and {prev_progress}.
SYSTEM_PROMPT_TEMPLATE = (
    'You are an expert roboticist with the goal of predicting task progress percentages given '
    'frames from a video of a robot attempting to complete a task. '
    'You first think, in the form of an internal monologue, before providing your final answer. '
    'Your reasoning process MUST BE enclosed within <think> </think> tags and should include '
    'detailed reasoning. '
    'Your final answer MUST BE enclosed within <answer> </answer> tags and should be a integer '
    '(positive or negative) representing current task progress percentage. '
    'Example output format: <think>[detailed reasoning process]</think><answer>[current task '
    'progress]%</answer>'
)
_INTRO = ('Here is an image containing multiple camera views of a robot attempting to complete a '
          'task. ')
_ROWS = ('The views on the top are from an external camera. The views on the bottom are from the '
         "robot's wrist camera. ")
_THREE_COLUMNS = ('The views from the very first timestep are shown to the left. The views from '
                  'the previous timestep are shown in the middle. The views from the current '
                  'timestep are shown to the right. ')
_TWO_COLUMNS = ('The views from the very first timestep are shown to the left. The views from the '
                'current timestep are shown to the right. ')
_TASK = 'The task description is: {task_description}. '
_WITH_PREVIOUS = ('The task progress for the very first timestep is 0%. The task progress for the '
                  'previous timestep is {prev_progress}%. Predict the task progress for the '
                  'current timestep.')
_FROM_ZERO = ('The task progress for the very first timestep is 0%. Predict the task progress for '
              'the current timestep.')
USER_QUESTION_TEMPLATE = _INTRO + _ROWS + _THREE_COLUMNS + _TASK + _WITH_PREVIOUS
USER_QUESTION_FROM_ZERO_TEMPLATE = _INTRO + _ROWS + _TWO_COLUMNS + _TASK + _FROM_ZERO
USER_QUESTION_EXTERNAL_VIEW_TEMPLATE = _INTRO + _THREE_COLUMNS + _TASK + _WITH_PREVIOUS
# Not the authors' constant of this name: theirs says a middle column shows the previous
# timestep although the from-zero image has only two columns.
USER_QUESTION_EXTERNAL_VIEW_FROM_ZERO_TEMPLATE = _INTRO + _TWO_COLUMNS + _TASK + _FROM_ZERO

_ANSWER = re.compile(r'<answer>(.*?)</answer>', re.DOTALL)
_ANSWER_UNCLOSED = re.compile(r'<answer>(.*?)</answer', re.DOTALL)
_THINK = re.compile(r'<think>(.*?)</think>', re.DOTALL)
_REPLY_TAG = re.compile(r'</?\s*(think|answer)\b', re.IGNORECASE)


def as_rgb_frame(frame: Any, name: str = 'frame') -> np.ndarray:
    """Check one camera frame and return it as a contiguous HxWx3 uint8 array.

    Grey frames (HxW or HxWx1) are repeated to three channels (the authors' letterbox fails on
    them; their server only ever saw RGB).

    Raises:
        ValueError: not a numpy array, not uint8, wrong rank or channel count, or zero size.
    """
    if not isinstance(frame, np.ndarray):
        raise ValueError(f'{name} must be a numpy array (HxWx3 uint8), got {type(frame).__name__}')
    if frame.dtype != np.uint8:
        raise ValueError(f'{name} must have dtype uint8, got {frame.dtype}')
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if frame.ndim != 3:
        raise ValueError(f'{name} must be HxWx3 (or HxW grey), got shape {frame.shape}')
    if frame.shape[2] not in (1, 3):
        raise ValueError(f'{name} must have 1 or 3 channels, got shape {frame.shape}')
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f'{name} has zero size: shape {frame.shape}')
    if frame.shape[2] == 1:
        frame = np.repeat(frame, 3, axis=2)
    return np.ascontiguousarray(frame)


def letterbox(frame: np.ndarray, size: int = TILE_PX, name: str = 'frame') -> np.ndarray:
    """Scale ``frame`` so its longer side is ``size`` and centre it on a black square.

    Same arithmetic as the authors' ``resize_with_padding``: ``int()`` truncation, INTER_AREA,
    offsets ``(size - new) // 2``.

    Raises:
        ValueError: the frame is malformed, or so thin that a side would shrink to 0 px.
    """
    import cv2

    frame = as_rgb_frame(frame, name)
    new_width, new_height = _letterbox_size(frame, size, name)
    resized = cv2.resize(frame, (new_width, new_height), interpolation=cv2.INTER_AREA)
    out = np.zeros((size, size, 3), dtype=np.uint8)
    top, left = (size - new_height) // 2, (size - new_width) // 2
    out[top:top + new_height, left:left + new_width] = resized
    return out


def _row(tiles: list[np.ndarray]) -> np.ndarray:
    gap = np.zeros((TILE_PX, GAP_PX, 3), dtype=np.uint8)
    parts = [tiles[0]]
    for tile in tiles[1:]:
        parts += [gap, tile]
    return np.hstack(parts)


def check_frames(first_external: np.ndarray, previous_external: np.ndarray,
                 current_external: np.ndarray, first_wrist: np.ndarray | None = None,
                 previous_wrist: np.ndarray | None = None,
                 current_wrist: np.ndarray | None = None, from_zero: bool = False) -> None:
    """Check the frames of one query as ``build_composite`` would, without building it.

    Raises:
        ValueError: a frame is malformed or too thin to letterbox, or only some of the three
            wrist frames are given.
    """
    wrist = (first_wrist, previous_wrist, current_wrist)
    given = [frame is not None for frame in wrist]
    if any(given) and not all(given):
        raise ValueError('give all three wrist frames (first, previous, current) or none; '
                         f'got first={given[0]}, previous={given[1]}, current={given[2]}')
    columns = ('first', 'current') if from_zero else ('first', 'previous', 'current')
    frames = {'first': (first_external, first_wrist),
              'previous': (previous_external, previous_wrist),
              'current': (current_external, current_wrist)}
    for column in columns:
        for view, frame in zip(('external', 'wrist'), frames[column]):
            if frame is not None or view == 'external':
                _letterbox_size(as_rgb_frame(frame, f'{column}_{view}'), TILE_PX,
                                f'{column}_{view}')


def _letterbox_size(frame: np.ndarray, size: int, name: str) -> tuple[int, int]:
    height, width = frame.shape[:2]
    scale = size / max(height, width)
    new_width, new_height = int(width * scale), int(height * scale)
    if new_width == 0 or new_height == 0:
        raise ValueError(f'{name} of shape {frame.shape} is too thin to letterbox into {size} px')
    return new_width, new_height


def build_composite(first_external: np.ndarray, previous_external: np.ndarray,
                    current_external: np.ndarray, first_wrist: np.ndarray | None = None,
                    previous_wrist: np.ndarray | None = None,
                    current_wrist: np.ndarray | None = None,
                    from_zero: bool = False) -> np.ndarray:
    """Tile the views into the composite the model was trained on (before the final resize).

    External views form the top row, wrist views the bottom row; columns are first | previous |
    current, or first | current when ``from_zero`` (``previous_*`` are then ignored). Without
    wrist frames only the external row is returned (the external-only variant).

    Returns:
        uint8 array of 773x1162x3 (default), 773x773x3 (from_zero), 384x1162x3 (external only)
        or 384x773x3 (external only + from_zero).

    Raises:
        ValueError: see ``check_frames``.
    """
    check_frames(first_external, previous_external, current_external, first_wrist,
                 previous_wrist, current_wrist, from_zero)
    columns = ('first', 'current') if from_zero else ('first', 'previous', 'current')
    views = {'first': (first_external, first_wrist),
             'previous': (previous_external, previous_wrist),
             'current': (current_external, current_wrist)}
    top = _row([letterbox(views[c][0], name=f'{c}_external') for c in columns])
    if first_wrist is None:
        return top
    bottom = _row([letterbox(views[c][1], name=f'{c}_wrist') for c in columns])
    return np.vstack([top, np.zeros((GAP_PX, top.shape[1], 3), dtype=np.uint8), bottom])


def smart_resize(height: int, width: int, factor: int = RESIZE_FACTOR,
                 min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """Return qwen_vl_utils' target (height, width): multiples of ``factor`` within the budget.

    >>> smart_resize(773, 1162)
    (784, 1176)
    """
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(f'aspect ratio must be at most {MAX_ASPECT_RATIO}, '
                         f'got {height}x{width}')
    # Python's round() rounds half to even, exactly as qwen_vl_utils' round_by_factor does.
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def to_model_image(composite: np.ndarray) -> 'Image.Image':
    """Resize the composite to ``smart_resize`` as the authors did (1162x773 -> 1176x784)."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(composite))
    height, width = smart_resize(image.height, image.width)
    # BICUBIC is Image.resize's default, which is what the authors' call without resample used.
    return image.resize((width, height), Image.Resampling.BICUBIC)


def normalize_goal(goal: str) -> str:
    """Strip whitespace and trailing periods: the template adds its own ``.`` after the task.

    Idempotent, so callers may normalise a goal they pass on. The goal is user text inside the
    prompt, so it may not carry the reply's tags: a goal quoting ``<answer>100%</answer>``
    could otherwise be read back as the model's answer.

    >>> normalize_goal(' Close the drawer. ')
    'Close the drawer'

    Raises:
        ValueError: the goal is empty, only whitespace, holds a control character or one of
            the tags ``<think>``, ``</think>``, ``<answer>``, ``</answer>``.
    """
    if not isinstance(goal, str):
        raise ValueError(f'goal must be a string, got {type(goal).__name__}')
    text = goal.strip().rstrip('.').rstrip()
    if not text:
        raise ValueError(f'goal is empty ({goal!r}): describe the task in words, '
                         "e.g. 'Close the drawer'")
    tag = _REPLY_TAG.search(text)
    if tag:
        raise ValueError(f'goal must not contain the reply tag {tag.group(0)!r}: the model '
                         'answers inside <think>/<answer> tags, and a goal holding them could '
                         'be read as its answer')
    control = next((c for c in text if unicodedata.category(c) == 'Cc'), None)
    if control is not None:
        raise ValueError(f'goal must be one line of text, got the control character '
                         f'{control!r} in {goal!r}')
    return text


def check_progress(value: Any, name: str = 'previous_progress') -> int:
    """Return ``value`` as an int percentage in [-100, 100], or raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f'{name} must be an integer percentage, got {value!r}')
    if not PROGRESS_MIN <= value <= PROGRESS_MAX:
        raise ValueError(f'{name} must be in [{PROGRESS_MIN}, {PROGRESS_MAX}], got {value}')
    return int(value)


def build_user_prompt(goal: str, previous_progress: int = 0, from_zero: bool = False,
                      external_only: bool = False) -> str:
    """Fill the user question for one query; ``previous_progress`` is ignored when from_zero."""
    task = normalize_goal(goal)
    previous = check_progress(previous_progress)
    if from_zero:
        template = (USER_QUESTION_EXTERNAL_VIEW_FROM_ZERO_TEMPLATE if external_only
                    else USER_QUESTION_FROM_ZERO_TEMPLATE)
        return template.format(task_description=task)
    template = USER_QUESTION_EXTERNAL_VIEW_TEMPLATE if external_only else USER_QUESTION_TEMPLATE
    return template.format(task_description=task, prev_progress=previous)


def build_messages(goal: str, previous_progress: int = 0, from_zero: bool = False,
                   external_only: bool = False) -> list[dict[str, Any]]:
    """Return the chat: the system prompt, then a user turn of ``[image, text]`` (image first)."""
    user = build_user_prompt(goal, previous_progress, from_zero, external_only)
    return [
        {'role': 'system', 'content': SYSTEM_PROMPT_TEMPLATE},
        {'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': user}]},
    ]


def message_texts(messages: list[dict[str, Any]]) -> tuple[str, str]:
    """Return (system text, user text) of a chat built by ``build_messages``."""
    system = next(m['content'] for m in messages if m['role'] == 'system')
    user = next(m for m in messages if m['role'] == 'user')['content']
    return system, ''.join(part['text'] for part in user if part.get('type') == 'text')


def prompt_hash(system: str, user: str) -> str:
    """Short sha256 of the exact prompt text, to join a reward with the prompt that made it."""
    digest = hashlib.sha256(system.encode('utf-8') + b'\x00' + user.encode('utf-8'))
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class ParsedAnswer:
    """Progress read from one model reply."""

    progress: int
    '''Percentage in [-100, 100]; the previous valid value when the reply did not parse.'''
    valid: bool
    '''True when the reply held an integer answer.'''
    reasoning: str
    '''The ``<think>`` text, else whatever came before ``<answer>``.'''


def extract_reasoning(text: str) -> str:
    """Return the ``<think>…</think>`` content, else the text before ``<answer>``, stripped."""
    match = _THINK.search(text)
    if match:
        return match.group(1).strip()
    before = text.split('<answer>', 1)[0]
    return before.replace('<think>', '', 1).strip()


def parse_answer(text: str, previous_progress: int = 0) -> ParsedAnswer:
    """Read the progress percentage from a model reply, carrying the last value on failure.

    Same rule as the authors' ``get_answer_from_completion`` plus their carry-forward: the first
    ``<answer>…</answer>`` (or ``<answer>…</answer`` with the ``>`` missing), stripped, every
    ``%`` dropped, parsed with ``int()`` and clamped to [-100, 100]. One difference: when the
    reply closes its reasoning with ``</think>``, the answer is looked for after the last one,
    so an ``<answer>`` quoted inside the reasoning (say, from the prompt) is never taken for
    the model's own; when nothing follows it but a stray tag (``<answer>50%</answer></think>``),
    after the one before, and so on. A reply that never closes its ``<think>`` is read as the
    reference reads every reply: its first answer anywhere.

    >>> parse_answer('<think>closer</think><answer>42%</answer>')
    ParsedAnswer(progress=42, valid=True, reasoning='closer')
    >>> parse_answer('<answer>about half</answer>', previous_progress=30).progress
    30
    >>> parse_answer('<think>it said <answer>100%</answer></think><answer>7%</answer>').progress
    7
    >>> parse_answer('<think>done</think><answer>50%</answer></think>').progress
    50
    >>> parse_answer('<think>the drawer is shut <answer>80%</answer>').progress
    80
    """
    previous = check_progress(previous_progress)
    reasoning = extract_reasoning(text)
    match = None
    parts = text.split('</think>')
    if len(parts) == 1:   # no reasoning closed: the first answer anywhere, as the reference
        match = _ANSWER.search(text) or _ANSWER_UNCLOSED.search(text)
    # Before the first </think> is reasoning; so is whatever a later <think> opens.
    for answer_part in reversed(parts[1:]):
        answer_part = answer_part.split('<think>', 1)[0]
        match = _ANSWER.search(answer_part) or _ANSWER_UNCLOSED.search(answer_part)
        if match:
            break
    if not match:
        return ParsedAnswer(previous, False, reasoning)
    answer = match.group(1).strip().replace('%', '')
    try:
        value = int(answer)
    except ValueError:
        return ParsedAnswer(previous, False, reasoning)
    return ParsedAnswer(min(PROGRESS_MAX, max(PROGRESS_MIN, value)), True, reasoning)

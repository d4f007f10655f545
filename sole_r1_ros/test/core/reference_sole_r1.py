"""Test fixture: the SOLE-R1 authors' reference code that ``reward.protocol`` must match.

Copied from github.com/philipmit/sole-r1-model at commit 71a61c5,
``reward_server/src/reward_server/constants.py`` and ``utils.py`` (released under the MIT
licence, per the repository's README), plus ``smart_resize`` and its rounding helpers from
qwen-vl-utils 0.0.14 (``qwen_vl_utils/vision_process.py``, Apache-2.0, Qwen team), which the
authors call. Only quoting and line breaks differ from the originals (for our linters); the
logic, the strings and the authors' defects are kept as they are. Do not "fix" this file.

Copyright (c) 2025 Robotics and AI Institute LLC dba RAI Institute. All rights reserved.
"""
import math
import re

import cv2
import numpy as np

# ---------------------------------------------------------------- constants.py (71a61c5)
SYSTEM_PROMPT_TEMPLATE = (
    'You are an expert roboticist with the goal of predicting task progress percentages given '
    'frames from a video of a robot attempting to complete a task. '
    + 'You first think, in the form of an internal monologue, before providing your final '
    'answer. '
    + 'Your reasoning process MUST BE enclosed within <think> </think> tags and should include '
    'detailed reasoning. '
    + 'Your final answer MUST BE enclosed within <answer> </answer> tags and should be a integer '
    '(positive or negative) representing current task progress percentage. '
    + 'Example output format: <think>[detailed reasoning process]</think><answer>[current task '
    'progress]%</answer>'
)
USER_QUESTION_TEMPLATE = (
    'Here is an image containing multiple camera views of a robot attempting to complete a '
    'task. '
    + 'The views on the top are from an external camera. The views on the bottom are from the '
    "robot's wrist camera. "
    + 'The views from the very first timestep are shown to the left. The views from the '
    'previous timestep are shown in the middle. The views from the current timestep are shown '
    'to the right. '
    + 'The task description is: {task_description}. '
    + 'The task progress for the very first timestep is 0%. The task progress for the previous '
    'timestep is {prev_progress}%. Predict the task progress for the current timestep.'
)
USER_QUESTION_FROM_ZERO_TEMPLATE = (
    'Here is an image containing multiple camera views of a robot attempting to complete a '
    'task. '
    + 'The views on the top are from an external camera. The views on the bottom are from the '
    "robot's wrist camera. "
    + 'The views from the very first timestep are shown to the left. The views from the current '
    'timestep are shown to the right. '
    + 'The task description is: {task_description}. '
    + 'The task progress for the very first timestep is 0%. Predict the task progress for the '
    'current timestep.'
)
USER_QUESTION_EXTERNAL_VIEW_TEMPLATE = (
    'Here is an image containing multiple camera views of a robot attempting to complete a '
    'task. '
    + 'The views from the very first timestep are shown to the left. The views from the '
    'previous timestep are shown in the middle. The views from the current timestep are shown '
    'to the right. '
    + 'The task description is: {task_description}. '
    + 'The task progress for the very first timestep is 0%. The task progress for the previous '
    'timestep is {prev_progress}%. Predict the task progress for the current timestep.'
)
# The authors' external-only + from-zero prompt, defect included (it names a middle column).
USER_QUESTION_EXTERNAL_VIEW_FROM_ZERO_TEMPLATE = (
    'Here is an image containing multiple camera views of a robot attempting to complete a '
    'task. '
    + 'The views from the very first timestep are shown to the left. The views from the '
    'previous timestep are shown in the middle. The views from the current timestep are shown '
    'to the right. '
    + 'The task description is: {task_description}. '
    + 'The task progress for the very first timestep is 0%. Predict the task progress for the '
    'current timestep.'
)


# ---------------------------------------------------------------- utils.py (71a61c5)
def resize_with_padding(img: np.ndarray, size: int = 384) -> np.ndarray:
    """Aspect ratio preserving image resize with padding."""
    h, w = img.shape[:2]
    # Determine scaling factor so max dimension == size
    scale = size / max(h, w)
    new_w = int(w * scale)
    new_h = int(h * scale)
    # Resize with preserved aspect ratio
    resized = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_AREA)
    # Create a black canvas 384x384
    output = np.zeros((size, size, 3), dtype=np.uint8)
    # Center the resized image on the canvas
    y_offset = (size - new_h) // 2
    x_offset = (size - new_w) // 2
    output[y_offset: y_offset + new_h, x_offset: x_offset + new_w] = resized
    return output


def create_composite_frame(
    first_frame_wrist_view: np.ndarray,
    first_frame_external_view: np.ndarray,
    frame0_wrist_view: np.ndarray,
    frame0_external_view: np.ndarray,
    frame1_wrist_view: np.ndarray,
    frame1_external_view: np.ndarray,
    from_zero: bool = False,
    external_only: bool = False,
    size: int = 384,
    padding: int = 5,
) -> np.ndarray:
    """Create composite image frame for VLM input."""
    first_imgs = [first_frame_wrist_view, first_frame_external_view]
    imgs0 = [frame0_wrist_view, frame0_external_view]
    imgs2 = [frame1_wrist_view, frame1_external_view]

    for i in range(len(first_imgs)):
        first_imgs[i] = resize_with_padding(first_imgs[i], size)
        imgs0[i] = resize_with_padding(imgs0[i], size)
        imgs2[i] = resize_with_padding(imgs2[i], size)

    col_pad = np.zeros((size, padding, 3), dtype=np.uint8)
    if not from_zero:
        bottom_row = np.hstack([first_imgs[0], col_pad, imgs0[0], col_pad, imgs2[0]])
        top_row = np.hstack(
            [
                first_imgs[1],
                col_pad,
                imgs0[1],
                col_pad,
                imgs2[1],
            ]
        )
    else:
        bottom_row = np.hstack([first_imgs[0], col_pad, imgs2[0]])
        top_row = np.hstack([first_imgs[1], col_pad, imgs2[1]])
    # Create horizontal (row) padding between timesteps
    # row_pad = np.zeros((padding, size, 3), dtype=np.uint8)
    full_width = top_row.shape[1]
    row_pad = np.zeros((padding, full_width, 3), dtype=np.uint8)

    if external_only:
        return top_row
    # Now stack horizontally instead of vertically
    return np.vstack([top_row, row_pad, bottom_row])


def get_answer_from_completion(completion):
    """Extract task progress answer from model completion string."""
    answer = ''
    answer_pattern = r'<answer>(.*?)</answer>'
    answer_match = re.search(answer_pattern, completion, re.DOTALL)
    if not answer_match:
        answer_pattern = r'<answer>(.*?)</answer'
        answer_match = re.search(answer_pattern, completion, re.DOTALL)
    if answer_match:
        answer = answer_match.group(1).strip()
        answer = answer.replace('%', '')
        try:
            answer_int = int(answer)
            if answer_int < -100:
                answer = '-100'
            elif answer_int > 100:
                answer = '100'
        except Exception as e:  # noqa: F841 - kept as written upstream
            answer_int = 0  # noqa: F841

    return answer


def carry_forward(answers: list) -> list:
    """The authors' main.py ``callback`` loop turning answer strings into progress integers."""
    valid_answers_ = [0]  # Assume the first step is always 0.
    for ans in answers:
        try:
            progress = int(ans)
        except (ValueError, TypeError):
            progress = valid_answers_[-1]
        valid_answers_.append(progress)
    return valid_answers_


# ------------------------------------------- qwen_vl_utils/vision_process.py (0.0.14)
IMAGE_FACTOR = 28
MIN_PIXELS = 4 * 28 * 28
MAX_PIXELS = 16384 * 28 * 28
MAX_RATIO = 200


def round_by_factor(number: int, factor: int) -> int:
    """Returns the closest integer to 'number' that is divisible by 'factor'."""
    return round(number / factor) * factor


def ceil_by_factor(number: int, factor: int) -> int:
    """Returns the smallest integer greater than or equal to 'number' divisible by 'factor'."""
    return math.ceil(number / factor) * factor


def floor_by_factor(number: int, factor: int) -> int:
    """Returns the largest integer less than or equal to 'number' divisible by 'factor'."""
    return math.floor(number / factor) * factor


def smart_resize(
    height: int, width: int, factor: int = IMAGE_FACTOR, min_pixels: int = MIN_PIXELS,
    max_pixels: int = MAX_PIXELS
) -> tuple[int, int]:
    """Rescales the image so that the following conditions are met.

    1. Both dimensions (height and width) are divisible by 'factor'.
    2. The total number of pixels is within the range ['min_pixels', 'max_pixels'].
    3. The aspect ratio of the image is maintained as closely as possible.
    """
    if max(height, width) / min(height, width) > MAX_RATIO:
        raise ValueError(
            f'absolute aspect ratio must be smaller than {MAX_RATIO}, '
            f'got {max(height, width) / min(height, width)}'
        )
    h_bar = max(factor, round_by_factor(height, factor))
    w_bar = max(factor, round_by_factor(width, factor))
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = floor_by_factor(height / beta, factor)
        w_bar = floor_by_factor(width / beta, factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = ceil_by_factor(height * beta, factor)
        w_bar = ceil_by_factor(width * beta, factor)
    return h_bar, w_bar


def prepare_vlm_image(composite_frame: np.ndarray):
    """The resize step of the authors' ``prepare_vlm_images`` for one composite."""
    from PIL import Image

    composite_frame = Image.fromarray(composite_frame)
    width, height = composite_frame.size
    resized_height, resized_width = smart_resize(
        height, width, factor=28, min_pixels=3136, max_pixels=12845056)
    return composite_frame.resize((resized_width, resized_height))

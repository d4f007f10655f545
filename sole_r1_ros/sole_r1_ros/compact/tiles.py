"""Read a SOLE-R1 query back out of its prepared form: camera tiles from the composite image,
goal and previous progress from the user text.

The compact model takes exactly what SOLE-R1 takes (``PreparedRequest``), so it is a drop-in
backend behind the same engine and protocol. The composite's layout is fixed by
``reward.protocol`` (384 px tiles, 5 px gaps, then one resize), so each tile is cropped and
area-downscaled in one PIL call with a fractional box.
"""
from dataclasses import dataclass
import re
from typing import Any, TYPE_CHECKING

import numpy as np

from sole_r1_ros.reward import protocol

if TYPE_CHECKING:
    from PIL import Image

_TASK = re.compile(r'The task description is: (.*?)\. The task progress for the very first')
_PREVIOUS = re.compile(r'The task progress for the previous timestep is (-?\d+)%\.')
_THREE_COLUMNS = 'The views from the previous timestep are shown in the middle.'
_TWO_ROWS = "The views on the bottom are from the robot's wrist camera."


@dataclass(frozen=True)
class ParsedPrompt:
    """What the user text of a SOLE-R1 query says."""

    goal: str
    previous_progress: int
    '''0 for a from-zero query (it quotes no previous value).'''
    from_zero: bool
    '''Two columns (first | current) instead of three.'''
    external_only: bool
    '''One row of tiles (no wrist view).'''


def parse_prompt(user_text: str) -> ParsedPrompt:
    """Parse the user text ``protocol.build_user_prompt`` made.

    Raises:
        ValueError: the text does not follow the SOLE-R1 template.

    >>> text = protocol.build_user_prompt('Close the drawer', 42)
    >>> parse_prompt(text)
    ParsedPrompt(goal='Close the drawer', previous_progress=42, from_zero=False, \
external_only=False)
    """
    task = _TASK.search(user_text)
    if task is None:
        raise ValueError('user text does not follow the SOLE-R1 template (no task description)')
    from_zero = _THREE_COLUMNS not in user_text
    previous = _PREVIOUS.search(user_text)
    if not from_zero and previous is None:
        raise ValueError('user text names a previous timestep but no previous progress')
    return ParsedPrompt(goal=task.group(1), previous_progress=0 if from_zero else int(
        previous.group(1)), from_zero=from_zero, external_only=_TWO_ROWS not in user_text)


def tile_boxes(width: int, height: int, rows: int, columns: int
               ) -> list[list[tuple[float, float, float, float]]]:
    """Return each tile's (left, top, right, bottom) in an image resized from the composite.

    Args:
        width, height: size of the (resized) composite image [px].
        rows: 2 with the wrist row, else 1; columns: 3, or 2 for from_zero.
    """
    tile, gap = protocol.TILE_PX, protocol.GAP_PX
    scale_x = width / (columns * tile + (columns - 1) * gap)
    scale_y = height / (rows * tile + (rows - 1) * gap)
    return [[(c * (tile + gap) * scale_x, r * (tile + gap) * scale_y,
              (c * (tile + gap) + tile) * scale_x, (r * (tile + gap) + tile) * scale_y)
             for c in range(columns)] for r in range(rows)]


def extract_views(image: 'Image.Image', from_zero: bool, external_only: bool,
                  size: int) -> np.ndarray:
    """Cut the composite into its camera tiles, each downscaled to ``size`` x ``size``.

    Returns:
        uint8 array (2 views, 3 times, size, size, 3): views are external then wrist (zeros
        when external_only), times first, previous, current (previous = first when
        from_zero).
    """
    from PIL import Image

    rows, columns = (1 if external_only else 2), (2 if from_zero else 3)
    rgb = image if image.mode == 'RGB' else image.convert('RGB')
    out = np.zeros((2, 3, size, size, 3), dtype=np.uint8)
    for row, boxes in enumerate(tile_boxes(rgb.width, rgb.height, rows, columns)):
        # An area (box) filter over the exact fractional tile box; cropping first keeps the
        # whole 1176x784 image from ever being copied into numpy (that copy alone costs more).
        tiles = [np.asarray(rgb.resize((size, size), Image.Resampling.BOX, box=box))
                 for box in boxes]
        if from_zero:
            tiles = [tiles[0], tiles[0], tiles[1]]
        out[row] = np.stack(tiles)
    return out


def read_request(request: Any, size: int) -> tuple[np.ndarray, ParsedPrompt]:
    """Return (views, prompt) of a ``PreparedRequest``; views as in ``extract_views``."""
    _, user = protocol.message_texts(request.messages)
    prompt = parse_prompt(user)
    return extract_views(request.image, prompt.from_zero, prompt.external_only, size), prompt

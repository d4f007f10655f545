"""Draw what the reward model saw and said: frames, goal, progress curve and latest reasoning.

One picture for rviz (the reward node's ``sole_r1/reward_image``) and for annotated videos. Drawn
with OpenCV (about a millisecond per frame) rather than matplotlib (tens of milliseconds).
"""
import textwrap

import cv2
import numpy as np

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_WHITE, _GREY, _GREEN, _RED = (255, 255, 255), (150, 150, 150), (80, 220, 100), (240, 90, 80)


def _fit_height(frame: np.ndarray, height: int) -> np.ndarray:
    scale = height / frame.shape[0]
    return cv2.resize(frame, (max(1, int(round(frame.shape[1] * scale))), height),
                      interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def _text(canvas: np.ndarray, text: str, x: int, y: int, scale: float = 0.45,
          color: tuple[int, int, int] = _WHITE) -> None:
    text = text.encode('ascii', 'replace').decode()   # Hershey fonts are ASCII only
    cv2.putText(canvas, text, (x, y), _FONT, scale, color, 1, cv2.LINE_AA)


def _curve(canvas: np.ndarray, history: list[tuple[int, float]], top: int, left: int,
           height: int, width: int, last_step: int) -> None:
    """Progress over steps in a box; y spans [-100, 100] with the 0 line drawn."""
    cv2.rectangle(canvas, (left, top), (left + width, top + height), _GREY, 1)
    zero_y = top + height // 2
    cv2.line(canvas, (left, zero_y), (left + width, zero_y), (70, 70, 70), 1)
    _text(canvas, '100%', left + 2, top + 12, 0.35, _GREY)
    if not history:
        return
    span = max(last_step, 1)
    points = np.array([[left + int(width * step / span),
                        zero_y - int((height / 2 - 2) * np.clip(progress, -100, 100) / 100)]
                       for step, progress in history], np.int32)
    cv2.polylines(canvas, [points], False, _GREEN, 2, cv2.LINE_AA)
    for x, y in points:
        cv2.circle(canvas, (int(x), int(y)), 3, _GREEN, -1, cv2.LINE_AA)


def draw_overlay(external: np.ndarray, wrist: np.ndarray | None, goal: str,
                 history: list[tuple[int, float]], reasoning: str = '',
                 title: str = '', frame_height: int = 240, valid: bool = True,
                 last_step: int | None = None) -> np.ndarray:
    """Return an RGB image: the views on top, then goal, progress, curve and reasoning.

    Args:
        external: the external camera's RGB frame.
        wrist: the wrist camera's RGB frame, or None.
        goal: the task in words.
        frame_height: height the views are scaled to [px].
        history: (step, progress %) of the episode's answers so far, oldest first.
        reasoning: the model's latest reasoning; wrapped and cut to five lines.
        title: a first line such as 'episode 3 step 40 (gripper)'.
        valid: False draws the progress in red (the answer did not parse: carried forward).
        last_step: the step at the right edge of the curve (default: the newest in history),
            so a video can keep its axis fixed while the curve grows.
    """
    views = [_fit_height(external, frame_height)]
    if wrist is not None:
        views.append(_fit_height(wrist, frame_height))
    top = np.concatenate(views, axis=1)
    width = max(top.shape[1], 480)
    panel_height = 250
    canvas = np.zeros((frame_height + panel_height, width, 3), np.uint8)
    canvas[:frame_height, :top.shape[1]] = top
    y = frame_height + 18
    if title:
        _text(canvas, title, 8, y, 0.45, _GREY)
        y += 18
    _text(canvas, f'goal: {goal}'[:90], 8, y)
    progress = history[-1][1] if history else 0.0
    _text(canvas, f'progress {progress:.0f}%', 8, y + 22, 0.6, _GREEN if valid else _RED)
    if last_step is None:
        last_step = history[-1][0] if history else 1
    _curve(canvas, history, y + 32, 8, 80, width - 16, last_step)
    lines = textwrap.wrap(' '.join(reasoning.split()), width=max(20, (width - 16) // 5))[:5]
    for i, line in enumerate(lines):
        _text(canvas, line, 8, y + 132 + 16 * i, 0.38, (210, 210, 210))
    return canvas

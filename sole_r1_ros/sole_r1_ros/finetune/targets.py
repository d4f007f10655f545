"""SFT target text: a short templated reasoning, then the answer the way SOLE-R1 writes it.

The template only states what the labels say (the previous value, the direction and size of the
change, the task); it teaches the reply format and the arithmetic of progress, not visual
grounding. Datasets with grounded reasoning (``sole-r1 synth``) carry their own text instead.
"""
from sole_r1_ros.reward import protocol

# Changes smaller than this many points are described as no clear change.
_STEADY_POINTS = 2


def answer_text(progress: int) -> str:
    """``<answer>N%</answer>`` for an integer percentage in [-100, 100].

    >>> answer_text(-5)
    '<answer>-5%</answer>'
    """
    return f'<answer>{protocol.check_progress(progress, "progress")}%</answer>'


def templated_reasoning(goal: str, progress: int, previous_progress: int | None) -> str:
    """One or two sentences comparing the current timestep with the previous (or first) one.

    ``previous_progress`` None means the from-zero prompt, which shows no previous timestep.

    >>> text = templated_reasoning('Close the drawer.', 45, 20)
    >>> text.startswith('The task is: Close the drawer. The previous timestep was at 20%.')
    True
    >>> text.endswith('made progress (+25 points), so the task is now 45% done.')
    True
    """
    task = protocol.normalize_goal(goal)
    progress = protocol.check_progress(progress, 'progress')
    if previous_progress is None:
        reference, since = 0, 'Since the first timestep'
        intro = f'The task is: {task}.'
    else:
        reference = protocol.check_progress(previous_progress)
        since = 'Since then'
        intro = f'The task is: {task}. The previous timestep was at {reference}%.'
    change = progress - reference
    if change >= _STEADY_POINTS:
        verdict = f'made progress (+{change} points)'
    elif change <= -_STEADY_POINTS:
        verdict = f'lost progress ({change} points)'
    else:
        verdict = 'made no clear change'
    return f'{intro} {since} the robot has {verdict}, so the task is now {progress}% done.'


def target_text(reasoning: str, progress: int) -> str:
    """The full SFT completion: ``<think>reasoning</think><answer>N%</answer>``."""
    return f'<think>{reasoning.strip()}</think>{answer_text(progress)}'

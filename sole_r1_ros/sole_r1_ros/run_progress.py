"""How much of a run with two budgets is behind, for progress bars.

A training or learning run stops at a step budget or a time budget, whichever comes first; a
bar that counts only one of them stops short or promises hours that never come.
"""


def run_share(steps: float, total_steps: float, elapsed_s: float, minutes: float) -> float:
    """The share of a run behind, in [0, 1]: its steps or its minutes, whichever ends it.

    ``total_steps`` may be ``math.inf`` (time only); ``minutes`` <= 0 means no time budget. A
    run of 10 minutes / 30,000 steps at 40 steps/s ends by time at 24,000 steps: 100 %, not 80 %.
    """
    share = steps / total_steps if total_steps > 0 else 0.0
    if minutes > 0:
        share = max(share, elapsed_s / (60.0 * minutes))
    return min(1.0, max(0.0, share))

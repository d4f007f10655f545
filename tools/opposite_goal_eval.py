"""``sole-r1 eval reward`` with every episode asked the opposite of its goal: a diagnostic.

The data README's "Mechanisms the 40 tasks do not have, a reverse task asked backwards, the
opposite goal" made its opposite-goal numbers with this wrapper. Each episode's goal has its
words of direction swapped (close / open, clockwise / counter-clockwise, down / up, push / pull,
press / pull, out of / into, back / forward) before the command scores it, so a model that reads
which way a thing moves scores the episodes low, and one that reads only how much it moved
scores them as under the right goal. The episodes' labels are the right goal's.

    python tools/opposite_goal_eval.py eval reward --backend compact --data runs/compact_data \\
        --tasks $HELD --split all --out opposite.json
"""
from dataclasses import replace
import re
import sys

from sole_r1_ros.cli import main
from sole_r1_ros.evaluation import reward_eval

# Words swapped both ways; a word's first pair wins (pull -> push, press -> pull).
PAIRS = (('counter-clockwise', 'clockwise'), ('closed', 'open'), ('close', 'open'),
         ('down', 'up'), ('pull', 'push'), ('press', 'pull'), ('out of', 'into'),
         ('back', 'forward'))


def _swap_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for a, b in PAIRS:
        table.setdefault(a, b)
        table.setdefault(b, a)
    return table


_TABLE = _swap_table()
_WORDS = re.compile(r'\b(' + '|'.join(map(re.escape, sorted(_TABLE, key=len, reverse=True)))
                    + r')\b')


def opposite(goal: str) -> str:
    """The goal with its words of direction swapped.

    >>> opposite('turn the faucet handle clockwise to close the faucet')
    'turn the faucet handle counter-clockwise to open the faucet'
    """
    return _WORDS.sub(lambda match: _TABLE[match.group(1)], goal)


_load_episodes = reward_eval.load_episodes


def _load_opposite(*args, **kwargs):
    return [replace(e, goal=opposite(e.goal)) for e in _load_episodes(*args, **kwargs)]


if __name__ == '__main__':
    reward_eval.load_episodes = _load_opposite
    sys.exit(main())

"""Was a compact model trained on this goal? The answer, with the nearest goal it knows.

The compact model is a reliable reward on the tasks it was trained on and not on others (README:
pooled Pearson 0.50 on six tasks it never saw, and a learner rewarded by it on one of them
found a pose it scored 100 % without moving the window). A checkpoint lists the goals it was
trained on (``info['goals']``, task -> phrasings), so a run can say so before it starts,
instead of the user finding out from a policy that hacks the reward. What carries over was
measured (data/README, "How many training tasks"): a trained motion in another scene, yes; a
trained task run backwards in the same scene, no, so the warning says when the goal reads like
its nearest trained goal in the opposite direction.
"""
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from sole_r1_ros.compact.goals import action_features, ACTION_WORDS, goal_key, GoalEncoder
from sole_r1_ros.sim.tasks import TASK_GOALS

# Pairs of ``ACTION_WORDS`` groups, named by their first word, that send a task opposite ways.
OPPOSITE_ACTIONS: tuple[tuple[str, str], ...] = (
    ('open', 'close'), ('push', 'pull'), ('lift', 'down'), ('in', 'out'),
    ('clockwise', 'counter-clockwise'))
_GROUP = {group[0]: index for index, group in enumerate(ACTION_WORDS)}


def runs_backwards(goal: str, other: str) -> bool:
    """True when ``goal`` has one word of an opposite pair and ``other`` the other, not both.

    >>> runs_backwards('open the drawer', 'close the drawer')
    True
    >>> runs_backwards('press the handle down from the side', 'press the handle down')
    False
    """
    a, b = action_features([goal, other]).astype(bool)
    for first, second in OPPOSITE_ACTIONS:
        i, j = _GROUP[first], _GROUP[second]
        if (a[i] and b[j] and not a[j] and not b[i]) or (a[j] and b[i] and not a[i] and not b[j]):
            return True
    return False


@dataclass(frozen=True)
class GoalCoverage:
    """How a goal relates to the goals a checkpoint was trained on."""

    goal: str
    trained: bool
    '''The goal is, up to case, spacing and a final period, one the model was trained on.'''
    nearest_goal: str
    '''The trained goal closest in the sentence embedding (the goal itself when trained).'''
    nearest_task: str
    similarity: float
    '''Cosine of the two goals' MiniLM embeddings; "open the door" and "close the door" are at
    0.89, so a high value does not mean the same task.'''
    num_goals: int
    num_tasks: int
    '''Training task ids: Meta-World tasks and the object-motion and undoing tasks made in
    their scenes.'''
    num_scenes: int = 0
    '''How many of ``num_tasks`` are Meta-World tasks (the scenes the model has seen).'''

    @property
    def reverses_nearest(self) -> bool:
        """The goal reads like its nearest trained goal run the other way (open / close, ...)."""
        return not self.trained and runs_backwards(self.goal, self.nearest_goal)

    def warning(self, model: str = 'the compact model') -> str | None:
        """A one-paragraph warning for a goal the model was not trained on; None otherwise."""
        if self.trained:
            return None
        backwards = (' It reads like that task run the other way, where the model was measured '
                     'to score progress backwards or not at all (push-back after push, '
                     'drawer-open after drawer-close).' if self.reverses_nearest else '')
        synthetic = self.num_tasks - self.num_scenes
        tasks = (f'{self.num_scenes} Meta-World tasks and {synthetic} object-motion and '
                 f'undoing tasks in their scenes' if self.num_scenes and synthetic
                 else f'{self.num_tasks} tasks')
        return (f'goal {self.goal!r} is not one of the {self.num_goals} goals {model} was '
                f'trained on ({tasks}); the nearest is {self.nearest_goal!r} '
                f'({self.nearest_task}, cosine {self.similarity:.2f}).{backwards} On tasks it '
                'never saw it is not a reliable reward and a learner can exploit it: distil it '
                "for this task (README, 'Distil SOLE-R1 into it') or use SOLE-R1 (--reward "
                'transformers or openai). If the goal is that task in other words, the model '
                'knows it.')


def goal_coverage(goal: str, trained_goals: Mapping[str, Sequence[str]],
                  encoder: GoalEncoder) -> GoalCoverage | None:
    """Compare ``goal`` with a checkpoint's trained goals (task -> phrasings).

    Returns None when the checkpoint lists no goals (nothing to compare with). The encoder
    loads MiniLM only for texts missing from its cache.
    """
    pairs = [(task, text) for task, texts in trained_goals.items() for text in texts]
    if not pairs:
        return None
    keys = [goal_key(text) for _, text in pairs]
    vectors = encoder.encode([goal, *(text for _, text in pairs)])
    similarity = vectors[1:] @ vectors[0]
    trained = goal_key(goal) in keys
    # a trained goal reports itself, not an equally close phrasing of another task
    best = keys.index(goal_key(goal)) if trained else int(np.argmax(similarity))
    return GoalCoverage(goal=goal, trained=trained, nearest_goal=pairs[best][1],
                        nearest_task=pairs[best][0], similarity=float(similarity[best]),
                        num_goals=len(set(keys)), num_tasks=len(trained_goals),
                        num_scenes=len(set(trained_goals) & set(TASK_GOALS)))

"""The evaluation's figure, with matplotlib.

Perceived-vs-true success per task (SOLE-R1's reward-hacking check) and each episode's final
answer by task (what AUROC measures).
"""
import math
import textwrap
from typing import Any, Mapping


def plot_perceived(summary: Mapping[str, Any], path: str, title: str = '') -> None:
    """Scatter perceived against true success per task, with the diagonal.

    Perceived success is the mean highest predicted progress of a task's episodes, true
    success the mean highest ground-truth progress; points well above the diagonal mean the
    reward model believes in progress that did not happen (reward hacking). Beside it, each
    episode's final answer per task, successes and failures apart (``_plot_finals``).
    """
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    figure, (axes, finals) = plt.subplots(1, 2, figsize=(13, 6), dpi=100,
                                          gridspec_kw={'width_ratios': [1, 1.15]})
    _plot_finals(finals, summary)
    axes.plot([0, 100], [0, 100], color='grey', linewidth=1, label='perceived = true')
    axes.fill_between([0, 100], [15, 115], [-15, 85], color='grey', alpha=0.12,
                      label='within 15 points')
    for task, group in summary['per_task'].items():
        axes.scatter(group['true'], group['perceived'], s=40, zorder=3)
        axes.annotate(textwrap.shorten(str(task), 28), (group['true'], group['perceived']),
                      fontsize=7, xytext=(4, 4), textcoords='offset points')
    axes.set(xlim=(-5, 105), ylim=(-5, 105), xlabel='true success: mean max ground-truth '
             'progress [%]', ylabel='perceived success: mean max predicted progress [%]',
             title='perceived vs true success per task')
    if title:
        figure.suptitle(textwrap.shorten(title, 120), fontsize=10)
    axes.legend(loc='upper left', fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _plot_finals(axes: Any, summary: Mapping[str, Any]) -> None:
    """Each episode's final answer, one column per task: filled if it succeeded.

    Within a column, successes above failures is the task's own AUROC; one line that puts
    every success above every failure across columns is the pooled AUROC, which needs the
    tasks' levels to agree.
    """
    import numpy as np

    tasks = list(summary['per_task'])
    rng = np.random.default_rng(0)   # jitter, so that equal answers stay visible
    for column, task in enumerate(tasks):
        episodes = [e for e in summary['episodes'] if e['task'] == task]
        for succeeded, offset in ((True, -0.15), (False, 0.15)):
            finals = [e['predicted'][-1] for e in episodes if e['success'] == succeeded]
            x = column + offset + rng.uniform(-0.08, 0.08, len(finals))
            axes.scatter(x, finals, s=18, zorder=3, color='tab:green' if succeeded else 'none',
                         edgecolors='tab:green' if succeeded else 'tab:red',
                         label=('succeeded' if succeeded else 'failed') if column == 0 else None)
    labels = []
    for task in tasks:
        auroc = summary['per_task'][task].get('auroc')
        shown = f'{auroc:.2f}' if auroc is not None and math.isfinite(auroc) else 'n/a'
        labels.append(f'{textwrap.shorten(str(task), 26)}  AUROC {shown}')
    many = len(tasks) > 10
    axes.set_xticks(range(len(tasks)), labels, rotation=90 if many else 60,
                    ha='center' if many else 'right', fontsize=6 if many else 7)
    pooled = summary.get('auroc')
    title = 'final answer per episode'
    if pooled is not None and math.isfinite(pooled):
        title += f' (pooled AUROC {pooled:.2f})'
    axes.set(ylim=(-5, 105), ylabel='final predicted progress [%]', title=title)
    axes.legend(loc='best', fontsize=8, framealpha=0.6)
    axes.grid(alpha=0.3, axis='y')

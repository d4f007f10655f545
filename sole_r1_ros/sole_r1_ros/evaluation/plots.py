"""The perceived-vs-true success plot (SOLE-R1's reward-hacking check), with matplotlib."""
import textwrap
from typing import Any, Mapping


def plot_perceived(summary: Mapping[str, Any], path: str, title: str = '') -> None:
    """Scatter perceived against true success per task, with the diagonal.

    Perceived success is the mean highest predicted progress of a task's episodes, true
    success the mean highest ground-truth progress; points well above the diagonal mean the
    reward model believes in progress that did not happen (reward hacking).
    """
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 6), dpi=100)
    axes.plot([0, 100], [0, 100], color='grey', linewidth=1, label='perceived = true')
    axes.fill_between([0, 100], [15, 115], [-15, 85], color='grey', alpha=0.12,
                      label='within 15 points')
    for task, group in summary['per_task'].items():
        axes.scatter(group['true'], group['perceived'], s=40, zorder=3)
        axes.annotate(textwrap.shorten(str(task), 28), (group['true'], group['perceived']),
                      fontsize=7, xytext=(4, 4), textcoords='offset points')
    axes.set(xlim=(-5, 105), ylim=(-5, 105), xlabel='true success: mean max ground-truth '
             'progress [%]', ylabel='perceived success: mean max predicted progress [%]',
             title=textwrap.shorten(title or 'perceived vs true success per task', 70))
    axes.legend(loc='upper left', fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)

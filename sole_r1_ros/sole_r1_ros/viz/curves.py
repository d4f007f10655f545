"""Learning curves of a run as one PNG: success, predicted vs true progress, losses."""
import json
import os
from pathlib import Path


def _read_jsonl(path: str | os.PathLike) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue   # a line cut by a crash: the rest of the file is still good
    return rows


def _smooth(values: list[float], window: int = 10) -> list[float]:
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _one_timeline(rows: list[dict], key: str) -> list[dict]:
    """The rows of the run as it went on: a resume from an older checkpoint drops the rest.

    A session that ended without its final checkpoint (a crash, a kill) is resumed from an
    earlier one, so the next session's counts start below rows already written; those rows
    belong to a branch the policy no longer has, and plotted they ran the curve backwards.
    """
    kept: list[dict] = []
    for row in rows:
        while kept and kept[-1][key] > row[key]:
            kept.pop()
        kept.append(row)
    return kept


def plot_learning_curves(episodes_jsonl: str | os.PathLike, metrics_jsonl: str | os.PathLike,
                         out_png: str | os.PathLike, title: str = '') -> bool:
    """Write the curves; False (and no file) when there is nothing to plot yet."""
    # Training episodes whose result arrived (a run killed mid-episode leaves one without).
    episodes = _one_timeline([e for e in _read_jsonl(episodes_jsonl)
                              if 'env_steps' in e and not e.get('evaluation')], 'env_steps')
    metrics = _one_timeline([m for m in _read_jsonl(metrics_jsonl)
                             if m.get('prefix') == 'train' and 'step' in m], 'step')
    if not episodes and not metrics:
        return False
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(15, 4))
    steps = [e['env_steps'] for e in episodes]
    if episodes:
        truth = [e.get('max_true_progress') for e in episodes]
        if any(t is not None for t in truth):
            success = [float(e.get('success', False)) for e in episodes]
            axes[0].plot(steps, _smooth(success), label='true success (sim, 10-episode mean)')
        axes[0].plot(steps, _smooth([float((e.get('final_progress') or 0.0) >= 90.0)
                                     for e in episodes]), label='predicted progress >= 90%')
        axes[0].set(xlabel='environment steps', ylabel='rate', ylim=(-0.05, 1.05),
                    title='success')
        axes[0].legend(fontsize='small')
        axes[1].plot(steps, _smooth([e.get('max_progress') or 0.0 for e in episodes]),
                     label='max predicted progress (reward model)')
        if any(t is not None for t in truth):
            axes[1].plot(steps, _smooth([t or 0.0 for t in truth]),
                         label='max true progress (simulator)')
        axes[1].set(xlabel='environment steps', ylabel='progress [%]', ylim=(-5, 105),
                    title='perceived vs true progress')
        axes[1].legend(fontsize='small')
    if metrics:
        for key in ('critic_loss', 'actor_loss'):
            values = [(m['step'], m[key]) for m in metrics if key in m]
            if values:
                axes[2].plot(*zip(*values), label=key)
        axes[2].set(xlabel='updates', title='losses')
        axes[2].legend(fontsize='small')
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(out_png, dpi=90)
    plt.close(figure)
    return True

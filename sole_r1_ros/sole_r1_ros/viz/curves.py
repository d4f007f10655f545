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


def _one_timeline(rows: list[dict], key: str, start_key: str = '') -> list[dict]:
    """The rows of the run as it went on: a resume from an older checkpoint drops the rest.

    A session that ended without its final checkpoint (a crash, a kill) is resumed from an
    earlier one, so the next session's counts start below rows already written; those rows
    belong to a branch the policy no longer has, and plotted they ran the curve backwards.
    A row's ``start_key`` (where its session began) drops them even where the new session's
    first row already counts past them (a lost episode at 325 stayed beside one at 326 of a
    session resumed at 301).
    """
    kept: list[dict] = []
    for row in rows:
        start = row.get(start_key) if start_key else None

        def lost(last: dict) -> bool:
            # a row that says no start (an older file, one written before the learner's first
            # status) is judged by the count alone
            of_an_older_session = (start is not None and last.get(start_key) is not None
                                   and last[start_key] != start)
            return last[key] > row[key] or (of_an_older_session and last[key] > start)
        while kept and lost(kept[-1]):
            kept.pop()
        kept.append(row)
    return kept


def episode_series(episodes: list[dict]) -> dict[str, tuple[list[int], list[float]]]:
    """The per-episode curves, each (env steps, 10-episode means), and ``unscored``.

    An episode the reward model never answered (``final_progress`` null, ``answers`` 0: a
    dead or slow reward node) is left out of the predicted curves, as the evaluation leaves it
    out of its predicted rates: counted as 0 %, twenty true successes after a reward outage
    drew predicted success falling 1.0 -> 0.0, a model that "says the task fails" when it
    said nothing. ``unscored`` is (their steps, 1.0 each).
    """
    steps = [e['env_steps'] for e in episodes]
    scored = [e for e in episodes if e.get('final_progress') is not None]
    unscored = [e['env_steps'] for e in episodes if e.get('final_progress') is None]
    series = {
        'predicted_success': ([e['env_steps'] for e in scored],
                              _smooth([float(e['final_progress'] >= 90.0) for e in scored])),
        'max_predicted': ([e['env_steps'] for e in scored],
                          _smooth([float(e.get('max_progress') or 0.0) for e in scored])),
        'unscored': (unscored, [1.0] * len(unscored))}
    truth = [e.get('max_true_progress') for e in episodes]
    if any(t is not None for t in truth):
        series['true_success'] = (steps, _smooth([float(e.get('success', False))
                                                  for e in episodes]))
        series['max_true'] = (steps, _smooth([float(t or 0.0) for t in truth]))
    return series


# One colour per quantity in every panel: the truth blue, the reward model's answers orange.
_TRUE, _PREDICTED = 'C0', 'C1'


def plot_learning_curves(episodes_jsonl: str | os.PathLike, metrics_jsonl: str | os.PathLike,
                         out_png: str | os.PathLike, title: str = '') -> bool:
    """Write the curves; False (and no file) when there is nothing to plot yet."""
    # Training episodes whose result arrived (a run killed mid-episode leaves one without).
    episodes = _one_timeline([e for e in _read_jsonl(episodes_jsonl)
                              if 'env_steps' in e and not e.get('evaluation')], 'env_steps',
                             'session_start_env_steps')
    metrics = _one_timeline([m for m in _read_jsonl(metrics_jsonl)
                             if m.get('prefix') == 'train' and 'step' in m], 'step')
    if not episodes and not metrics:
        return False
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(15, 4))
    if episodes:
        series = episode_series(episodes)
        if 'true_success' in series:
            axes[0].plot(*series['true_success'], color=_TRUE,
                         label='true success (sim, 10-episode mean)')
        axes[0].plot(*series['predicted_success'], color=_PREDICTED,
                     label='predicted progress >= 90%')
        unscored = series['unscored'][0]
        if unscored:
            axes[0].plot(unscored, [-0.03] * len(unscored), '|', color='grey',
                         label=f'not answered ({len(unscored)}, left out)')
        axes[0].set(xlabel='environment steps', ylabel='rate', ylim=(-0.05, 1.05),
                    title='success')
        axes[0].legend(fontsize='small')
        axes[1].plot(*series['max_predicted'], color=_PREDICTED,
                     label='max predicted progress (reward model)')
        values = list(series['max_predicted'][1])
        if 'max_true' in series:
            axes[1].plot(*series['max_true'], color=_TRUE, label='max true progress (simulator)')
            values += series['max_true'][1]
        # answers go down to -100 % (the protocol's undoing): not cut off at -5
        axes[1].set(xlabel='environment steps', ylabel='progress [%]',
                    ylim=(min([-5.0, *[v - 5.0 for v in values]]), 105),
                    title='perceived vs true progress')
        axes[1].legend(fontsize='small')
    if metrics:
        for key in ('critic_loss', 'actor_loss'):
            values = [(m['step'], m[key]) for m in metrics if key in m]
            if values:
                axes[2].plot(*zip(*values), label=key)
        axes[2].set(xlabel='updates', title='losses')
        axes[2].legend(fontsize='small')
    else:
        axes[2].set(title='losses')
        axes[2].text(0.5, 0.5, 'no learner updates yet', ha='center', va='center',
                     transform=axes[2].transAxes)
        axes[2].set_axis_off()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(out_png, dpi=90)
    plt.close(figure)
    return True

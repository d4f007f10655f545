"""SFT then GRPO through TRL on the tiny random Qwen3-VL, on the CPU, via ``sole-r1 finetune``.

The tuned checkpoints must load where SOLE-R1 is used: ``sole-r1 score`` and ``sole-r1 eval
reward`` with the transformers backend. The SFT run is long enough (40 steps, ~10 s) for the
tiny model to learn the reply format, so GRPO sees rewards that differ within a group and its
update really changes the weights.
"""
import dataclasses
import json

import numpy as np
import pytest

pytest.importorskip('cv2')
torch = pytest.importorskip('torch')
pytest.importorskip('trl')
pytest.importorskip('peft')
pytest.importorskip('datasets')

from sole_r1_ros.cli import main  # noqa: E402
from sole_r1_ros.finetune import episodes, export  # noqa: E402
from sole_r1_ros.finetune.examples import DatasetWriter  # noqa: E402
from sole_r1_ros.labelled import LabelledEpisode, video  # noqa: E402

_GOAL = 'Close the drawer'
_CPU = ['--device', 'cpu', '--seed', '0']


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the CI machine has 2 shared cores
    yield
    torch.set_num_threads(threads)


def _frames(count, seed):
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(count):
        frame = rng.integers(0, 60, (48, 64, 3), dtype=np.uint8)
        frame[4 + 6 * i:16 + 6 * i, 20:40] = 255  # a lid closing
        frames.append(frame)
    return frames


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
    """Write external-only examples with a short given reasoning, and a video to score.

    External-only: half the image tokens of two rows; the given reasoning as a synth export
    carries its own.
    """
    root = tmp_path_factory.mktemp('finetune')
    schedule = episodes.QuerySchedule(num_queries=3)
    with DatasetWriter(str(root / 'data')) as writer:
        for index in range(2):
            episode = LabelledEpisode(
                f'ep{index}', _GOAL, [0, 10, 25, 40, 70, 100], dict(enumerate(_frames(6, index))))
            for example, composite in episodes.episode_examples(episode, schedule):
                writer.add(dataclasses.replace(example, reasoning='Closer.'), composite)
    video.write_video(str(root / 'video.mp4'), _frames(5, 7))
    return root


@pytest.fixture(scope='module')
def sft_checkpoint(workdir):
    out = workdir / 'sft'
    assert main(['finetune', 'sft', '--data', str(workdir / 'data'), '--model', 'tiny-random',
                 '--out', str(out), '--full', '--max-steps', '40', '--lr', '2e-2',
                 '--lr-scheduler', 'constant', '--batch-size', '1', '--grad-accum', '1',
                 '--logging-steps', '10', *_CPU]) == 0
    return out


def _score(workdir, checkpoint, name):
    out = workdir / f'{name}.json'
    assert main(['score', str(workdir / 'video.mp4'), '--goal', _GOAL, '--model', str(checkpoint),
                 '--num-queries', '2', '--temperature', '0', '--max-new-tokens', '24',
                 '--out', str(out), *_CPU]) == 0
    return json.loads(out.read_text())


def _weights(checkpoint):
    from safetensors.torch import load_file

    return load_file(str(checkpoint / 'model.safetensors'))


def test_sft_exports_a_checkpoint_that_answers_in_protocol_format(sft_checkpoint, workdir):
    meta = json.loads((sft_checkpoint / export.METADATA).read_text())
    assert meta['stage'] == 'sft' and meta['steps'] == 40
    assert meta['config']['train']['method'] == 'full'
    losses = [h['loss'] for h in meta['log_history'] if 'loss' in h]
    assert len(losses) == 4 and losses[-1] < losses[0] / 3
    for name in ('config.json', 'model.safetensors', 'preprocessor_config.json',
                 'tokenizer_config.json'):
        assert (sft_checkpoint / name).is_file(), name
    export.check_checkpoint(str(sft_checkpoint))
    for name in ('tokenizer_config.json', 'preprocessor_config.json'):   # for AutoProcessor
        processor_class = json.loads((sft_checkpoint / name).read_text())['processor_class']
        assert processor_class == 'Qwen3VLProcessor', name
    # --full without --train-vision: the language model moved, the vision tower did not.
    from sole_r1_ros.reward.backends import qwen
    start = qwen.build_tiny(seed=0)[0].state_dict()
    tuned = _weights(sft_checkpoint)
    vision = [k for k in tuned if '.visual.' in k]
    assert vision and all(torch.equal(tuned[k], start[k]) for k in vision)
    assert not torch.equal(tuned['model.language_model.layers.0.self_attn.q_proj.weight'],
                           start['model.language_model.layers.0.self_attn.q_proj.weight'])
    report = _score(workdir, sft_checkpoint, 'sft_score')
    assert report['model_id'] == 'sft' and report['backend'] == 'transformers'
    # A random model never answers in format; the tuned one does, on an unseen video.
    assert any(q['valid'] and q['raw_text'].startswith('<think>') for q in report['queries'])


def test_grpo_lora_updates_the_language_model_and_exports_a_merged_checkpoint(
        sft_checkpoint, workdir):
    out = workdir / 'grpo'
    assert main(['finetune', 'grpo', '--data', str(workdir / 'data'),
                 '--model', str(sft_checkpoint), '--out', str(out), '--lora', '--max-steps', '1',
                 '--lr', '1e-2', '--batch-size', '4', '--grad-accum', '2',
                 '--num-generations', '4', '--max-completion-length', '24',
                 '--format-weight', '0.5', '--logging-steps', '1',
                 *_CPU]) == 0
    meta = json.loads((out / export.METADATA).read_text())
    steps = [h for h in meta['log_history'] if 'reward' in h]
    assert meta['stage'] == 'grpo' and meta['steps'] == 1 and len(steps) == 1
    for logged in steps:  # TRL's total reward is our weighted sum of the two terms
        assert logged['reward'] == pytest.approx(
            0.5 * logged['rewards/progress_format/mean']
            + 1.0 * logged['rewards/progress_accuracy/mean'], abs=1e-5)
    # Two groups of four; at least one had unequal rewards, so there was a learning signal.
    assert steps[0]['frac_reward_zero_std'] < 1
    before, after = _weights(sft_checkpoint), _weights(out)
    assert set(before) == set(after)  # merged: a plain checkpoint, no adapter tensors
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all('language_model' in k for k in changed)
    assert any(k.endswith('q_proj.weight') for k in changed)
    report = _score(workdir, out, 'grpo_score')
    assert report['model_id'] == 'grpo' and len(report['queries']) == 2


def test_tuned_checkpoint_runs_through_eval_reward(sft_checkpoint, workdir):
    folder = workdir / 'eval'
    episode = folder / 'episodes' / 'video'
    episode.mkdir(parents=True)
    (episode / 'external.mp4').write_bytes((workdir / 'video.mp4').read_bytes())
    (episode / 'labels.json').write_text(json.dumps(
        {'goal': _GOAL, 'progress': [0, 20, 40, 70, 100]}))
    out = workdir / 'eval.json'
    assert main(['eval', 'reward', '--data', str(folder), '--backend', 'transformers',
                 '--model', str(sft_checkpoint), '--num-queries', '2', '--out', str(out),
                 *_CPU]) == 0
    result = json.loads(out.read_text())
    assert result['n_episodes'] == 1 and result['n_queries'] == 2


def test_a_run_stopped_part_way_resumes_from_its_last_checkpoint(workdir, capsys):
    """--save-steps keeps TRL checkpoints (the last two); --resume continues from the newest."""
    data, out = str(workdir / 'data'), workdir / 'resumed'
    common = ['finetune', 'sft', '--data', data, '--model', 'tiny-random', '--out', str(out),
              '--batch-size', '1', '--grad-accum', '1', '--save-steps', '1', *_CPU]
    assert main([*common, '--resume', '--max-steps', '2']) == 2      # nothing to resume yet
    assert 'no complete TRL checkpoint in' in capsys.readouterr().err
    assert main([*common, '--max-steps', '3']) == 0
    kept = sorted(p.name for p in (out / 'trainer').iterdir() if p.name.startswith('checkpoint'))
    assert kept == ['checkpoint-2', 'checkpoint-3']
    assert main([*common, '--resume', '--max-steps', '5']) == 0
    assert json.loads((out / export.METADATA).read_text())['steps'] == 5
    assert 'sft: 5 steps' in capsys.readouterr().out


def test_bad_arguments_are_one_line_errors(workdir, capsys):
    data = str(workdir / 'data')
    assert main(['finetune', 'grpo', '--data', data, '--model', 'tiny-random',
                 '--out', str(workdir / 'x'), '--num-generations', '3', *_CPU]) == 2
    assert 'multiple of num_generations' in capsys.readouterr().err
    assert main(['finetune', 'sft', '--data', str(workdir / 'none'), '--model', 'tiny-random',
                 '--out', str(workdir / 'y'), *_CPU]) == 2
    assert 'not a fine-tuning dataset' in capsys.readouterr().err
    assert main(['finetune', 'sft', '--data', data, '--model', str(workdir / 'no-model'),
                 '--out', str(workdir / 'z'), '--max-steps', '1', *_CPU]) == 2
    assert 'no Qwen3-VL checkpoint' in capsys.readouterr().err
    # A checkpoint is never written over by the next run, nor the model it starts from.
    assert main(['finetune', 'sft', '--data', data, '--model', str(workdir / 'sft'),
                 '--out', str(workdir / 'sft'), *_CPU]) == 2
    assert 'is the --model being trained' in capsys.readouterr().err
    (workdir / 'used').mkdir(exist_ok=True)
    (workdir / 'used' / 'model.safetensors').write_bytes(b'weights')
    assert main(['finetune', 'sft', '--data', data, '--model', 'tiny-random',
                 '--out', str(workdir / 'used'), *_CPU]) == 2
    assert 'already holds files (a checkpoint?)' in capsys.readouterr().err


def test_ctrl_c_writes_a_checkpoint_the_run_resumes_from(workdir, monkeypatch, capsys):
    """Without --save-steps a stopped run kept nothing (an empty trainer/): hours of GPU lost."""
    import os
    import signal

    from sole_r1_ros.finetune import trainers
    made = trainers._stop_on_signal

    def interrupted_at_step_2():
        stop = made()
        on_step_end = stop.on_step_end

        def step_end(args, state, control, **kwargs):
            if state.global_step == 2 and stop.signum is None:
                os.kill(os.getpid(), signal.SIGINT)     # a person's Ctrl-C during step 2
            return on_step_end(args, state, control, **kwargs)
        stop.on_step_end = step_end
        return stop
    monkeypatch.setattr(trainers, '_stop_on_signal', interrupted_at_step_2)
    out = workdir / 'interrupted'
    common = ['finetune', 'sft', '--data', str(workdir / 'data'), '--model', 'tiny-random',
              '--out', str(out), '--batch-size', '1', '--grad-accum', '1', *_CPU]
    assert main([*common, '--max-steps', '4']) == 130
    assert sorted(p.name for p in (out / 'trainer').iterdir()
                  if p.name.startswith('checkpoint')) == ['checkpoint-2']
    assert not (out / export.METADATA).exists()        # no export of a half-trained model
    monkeypatch.setattr(trainers, '_stop_on_signal', made)
    assert main([*common, '--resume', '--max-steps', '4']) == 0
    assert json.loads((out / export.METADATA).read_text())['steps'] == 4


def test_a_new_run_in_an_old_out_never_resumes_or_exports_the_old_run(workdir, capsys):
    """After --overwrite, --resume went on from the old run's newest checkpoint.

    And a checkpoint cut off while saving (no trainer_state.json) made --resume fail, with a
    complete one before it.
    """
    import shutil
    other = workdir / 'other-data'
    if not other.exists():
        shutil.copytree(workdir / 'data', other)
    out = workdir / 'reused'
    common = ['finetune', 'sft', '--model', 'tiny-random', '--out', str(out), '--batch-size',
              '1', '--grad-accum', '1', '--save-steps', '1', *_CPU]
    assert main([*common, '--data', str(workdir / 'data'), '--max-steps', '3']) == 0
    assert main([*common, '--data', str(other), '--max-steps', '2', '--overwrite']) == 0
    kept = sorted(p.name for p in (out / 'trainer').iterdir() if p.name.startswith('checkpoint'))
    assert kept == ['checkpoint-1', 'checkpoint-2']   # the old run's 2 and 3 are gone
    capsys.readouterr()
    assert main([*common, '--data', str(workdir / 'data'), '--max-steps', '4', '--resume']) == 2
    assert 'are of another run' in capsys.readouterr().err
    (out / 'trainer' / 'checkpoint-2' / 'trainer_state.json').unlink()   # cut off saving
    assert main([*common, '--data', str(other), '--max-steps', '3', '--resume']) == 0
    assert json.loads((out / export.METADATA).read_text())['steps'] == 3   # from checkpoint-1


def test_a_signal_during_the_export_lets_it_finish(workdir, monkeypatch):
    """A Ctrl-C during the minutes an 8B export takes left an --out with nothing to load."""
    import os
    import signal
    merged = export.merged_model

    def interrupted(model):
        os.kill(os.getpid(), signal.SIGINT)
        return merged(model)
    monkeypatch.setattr(export, 'merged_model', interrupted)
    out = workdir / 'exported'
    assert main(['finetune', 'sft', '--data', str(workdir / 'data'), '--model', 'tiny-random',
                 '--out', str(out), '--max-steps', '1', '--batch-size', '1', '--grad-accum',
                 '1', *_CPU]) == 130
    assert json.loads((out / export.METADATA).read_text())['steps'] == 1
    assert (out / 'model.safetensors').exists()
    assert not [p for p in out.iterdir() if p.name.startswith('.export')]


def test_full_tuning_in_bf16_is_warned_of(workdir, caplog):
    """Full tuning in bf16: AdamW updates the weights with no float32 copy, and most round away."""
    import logging

    from sole_r1_ros.finetune.config import TrainConfig
    from sole_r1_ros.finetune.model import load_model, Precision
    caplog.set_level(logging.WARNING, logger='sole_r1_ros')
    config = TrainConfig(output_dir=str(workdir / 'unused'), model='tiny-random', method='full')
    load_model(config, Precision('cpu', True))
    assert 'keeps no float32 weights' in caplog.text
    caplog.clear()
    load_model(dataclasses.replace(config, method='lora'), Precision('cpu', True))
    assert 'keeps no float32 weights' not in caplog.text

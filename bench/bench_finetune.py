"""Fine-tuning throughput: optimizer steps/s and peak memory of LoRA SFT and GRPO.

GPU (``--device cuda``): random weights in the real Qwen3-VL-8B shape (``8b-random``, bf16),
LoRA on the language model, gradient checkpointing, the real SOLE-R1 query (two-row composite,
888 image tokens) and, for GRPO, 8 completions of 200 new tokens per prompt (random weights
never stop early, so this is the worst case). CPU (``--tiny``): the same code path on the tiny
random Qwen3-VL; a smoke test of the pipeline, not a speed number. ``--shape-check`` builds the
8B model on the meta device and reports parameter counts and memory floors without running.

    python bench/bench_finetune.py --tiny                 # CPU, about a minute
    python bench/bench_finetune.py --device cuda          # H100: SFT + GRPO, LoRA, bf16
    python bench/bench_finetune.py --shape-check

Both stages go through ``sole_r1_ros.finetune.trainers`` (TRL's SFTTrainer / GRPOTrainer) with
export off. Results merge into bench/results/finetune.json, keyed by mode.
"""
import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time

import numpy as np

try:
    import sole_r1_ros  # noqa: F401 - installed (colcon / pip -e)
except ImportError:  # running from a plain checkout
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                                    'sole_r1_ros'))

from sole_r1_ros.finetune import episodes, trainers  # noqa: E402
from sole_r1_ros.finetune.config import GrpoConfig, SftConfig, TrainConfig  # noqa: E402
from sole_r1_ros.labelled import LabelledEpisode  # noqa: E402
from results_io import merge_result  # noqa: E402  (bench/ is first on sys.path)

_RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results', 'finetune.json')
_GOALS = ['Close the drawer', 'Pick up the red cube and place it in the bowl',
          'Open the cabinet door', 'Push the puck to the goal']


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--tiny', action='store_true', help='CPU smoke run on the tiny model')
    mode.add_argument('--shape-check', action='store_true',
                      help='8B shape on the meta device: parameters and memory floors only')
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--model', default=None,
                        help="default: '8b-random' on CUDA, 'tiny-random' on CPU")
    parser.add_argument('--stages', nargs='+', default=['sft', 'grpo'], choices=['sft', 'grpo'])
    parser.add_argument('--steps', type=int, default=None,
                        help='timed optimizer steps per stage, after one warm-up step '
                             '(default: CUDA 5, CPU 3)')
    parser.add_argument('--batch-size', type=int, default=None,
                        help='per forward pass (default: SFT 1, GRPO 4 completions)')
    parser.add_argument('--grad-accum', type=int, default=None,
                        help='forward passes per step (default: SFT 8, GRPO 2; CPU: 2 and 1)')
    parser.add_argument('--num-generations', type=int, default=None,
                        help='GRPO completions per prompt (default: CUDA 8, CPU 4)')
    parser.add_argument('--max-completion-length', type=int, default=None,
                        help='GRPO completion tokens (default: CUDA 200, CPU 16)')
    parser.add_argument('--no-gradient-checkpointing', action='store_true')
    parser.add_argument('--full', action='store_true', help='full fine-tuning instead of LoRA')
    parser.add_argument('--out', default=_RESULTS)
    args = parser.parse_args(argv)
    if args.tiny:
        args.device = 'cpu'
    cuda = args.device == 'cuda'
    args.model = args.model or ('8b-random' if cuda else 'tiny-random')
    args.steps = args.steps or (5 if cuda else 3)
    args.max_completion_length = args.max_completion_length or (200 if cuda else 16)
    args.num_generations = args.num_generations or (8 if cuda else 4)
    return args


# ---------------------------------------------------------------- data
def _write_data(root: str, count: int) -> str:
    """Random two-row episodes in the real camera shape (480x640), 4 queries each."""
    rng = np.random.default_rng(0)
    schedule = episodes.QuerySchedule(num_queries=4)

    def episode(index: int) -> LabelledEpisode:
        frames = [rng.integers(0, 255, (480, 640, 3), dtype=np.uint8) for _ in range(5)]
        wrist = [rng.integers(0, 255, (480, 640, 3), dtype=np.uint8) for _ in range(5)]
        return LabelledEpisode(
            f'bench{index}', _GOALS[index % len(_GOALS)], [0, 20, 45, 70, 100],
            dict(enumerate(frames)), dict(enumerate(wrist)))

    folder = os.path.join(root, 'data')
    episodes.write_dataset((episode(i) for i in range((count + 3) // 4)), folder, schedule)
    return folder


# ---------------------------------------------------------------- timing
def _timer_callback(cuda: bool):
    import torch
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Wall time of every optimizer step (synchronised on CUDA)."""

        def __init__(self) -> None:
            self.step_s: list[float] = []
            self._start = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            self.step_s.append(time.perf_counter() - self._start)

    return StepTimer()


def _peak_gb(cuda: bool) -> float:
    import torch

    if cuda:
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _train_config(args, stage: str, root: str) -> TrainConfig:
    sft = stage == 'sft'
    cuda = args.device == 'cuda'
    # CPU: a smoke run, so fewer forward passes per step.
    grad_accum = (8 if sft else 2) if cuda else (2 if sft else 1)
    return TrainConfig(
        model=args.model, output_dir=os.path.join(root, stage),
        method='full' if args.full else 'lora', max_steps=args.steps + 1,
        learning_rate=1e-4 if sft else 1e-5,
        batch_size=args.batch_size or (1 if sft else 4),
        grad_accum=args.grad_accum or grad_accum, device=args.device,
        gradient_checkpointing=cuda and not args.no_gradient_checkpointing,
        logging_steps=1, export=False)


def _run_stage(args, stage: str, data: str, root: str) -> dict:
    import gc

    import torch

    cuda = args.device == 'cuda'
    gc.collect()  # the previous stage's model and optimizer
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    train = _train_config(args, stage, root)
    timer = _timer_callback(cuda)
    start = time.perf_counter()
    if stage == 'sft':
        result = trainers.run_sft(SftConfig(train), data, callbacks=[timer])
        per_step = train.batch_size * train.grad_accum
        unit = 'examples'
    else:
        config = GrpoConfig(train, num_generations=args.num_generations,
                            max_completion_length=args.max_completion_length)
        result = trainers.run_grpo(config, data, callbacks=[timer])
        per_step = train.batch_size * train.grad_accum
        unit = 'completions'
    timed = timer.step_s[1:]  # the first step pays for allocation and kernel selection
    median_s = statistics.median(timed)
    logs = [h for h in result.log_history if 'loss' in h]
    row = {'stage': stage, 'method': train.method, 'steps_timed': len(timed),
           'step_s': [round(s, 3) for s in timer.step_s], 'median_step_s': round(median_s, 3),
           'steps_per_s': round(1 / median_s, 4), f'{unit}_per_step': per_step,
           f'{unit}_per_s': round(per_step / median_s, 3), 'batch_size': train.batch_size,
           'grad_accum': train.grad_accum, 'gradient_checkpointing': train.gradient_checkpointing,
           'peak_memory_gb': round(_peak_gb(cuda), 2),
           'peak_memory_kind': 'torch.cuda.max_memory_allocated' if cuda else 'process max RSS',
           'wall_s': round(time.perf_counter() - start, 1),
           'last_loss': logs[-1]['loss'] if logs else None}
    if stage == 'grpo':
        row.update(num_generations=args.num_generations,
                   max_completion_length=args.max_completion_length,
                   mean_completion_tokens=_mean(logs, 'completions/mean_length'))
    print(f"{stage}: {row['steps_per_s']:.3f} steps/s ({row[f'{unit}_per_s']:.2f} {unit}/s), "
          f"median step {median_s:.2f} s, peak {row['peak_memory_gb']:.1f} GB", flush=True)
    return row


def _mean(logs: list[dict], key: str) -> float | None:
    values = [h[key] for h in logs if key in h]
    return round(sum(values) / len(values), 1) if values else None


def _prompt_tokens(data: str) -> int:
    """Tokens of one query as the model sees it (image + text), with the local tokenizer."""
    from sole_r1_ros.finetune.dataset import build_dataset
    from sole_r1_ros.reward.backends import qwen

    row = build_dataset(data, 'grpo')[0]
    _, processor = qwen.build_tiny()
    text = processor.apply_chat_template(row['prompt'], tokenize=False,
                                         add_generation_prompt=True)
    return int(processor(text=[text], images=row['images'], return_tensors='pt')
               ['input_ids'].shape[1])


def _measure(args) -> dict:
    import torch
    import transformers
    import trl

    if args.device == 'cpu':
        torch.set_num_threads(1)  # a smoke run on a shared machine; threads only contend
    cuda = args.device == 'cuda'
    result = {'mode': f'{args.device}/{args.model}', 'device_name': _device_name(cuda),
              'dtype': 'bfloat16' if cuda else 'float32',
              'versions': {'torch': torch.__version__, 'transformers': transformers.__version__,
                           'trl': trl.__version__}, 'rows': []}
    with tempfile.TemporaryDirectory(prefix='bench_finetune_') as root:
        examples_needed = (args.steps + 1) * 8
        data = _write_data(root, examples_needed)
        result['prompt_tokens'] = _prompt_tokens(data)
        for stage in args.stages:
            result['rows'].append(_run_stage(args, stage, data, root))
            # Stored after every stage: a run cut short (a GPU lease, a timeout) keeps the
            # stages it finished.
            _store(args, result)
    return result


def _shape_check() -> dict:
    """8B shape on the meta device: what LoRA trains and the memory it cannot go below."""
    import torch

    from sole_r1_ros.finetune import model as model_module
    from sole_r1_ros.reward.backends import qwen

    model, _ = qwen.build_random_8b('meta', torch.bfloat16)
    total = sum(p.numel() for p in model.parameters())
    from peft import get_peft_model

    lora = model_module.lora_config(TrainConfig(model='8b-random', output_dir='unused'))
    peft_model = get_peft_model(model, lora)
    trainable = [(n, p.numel()) for n, p in peft_model.named_parameters() if p.requires_grad]
    lora_params = sum(n for _, n in trainable)
    in_vision = [n for n, _ in trainable if '.visual.' in n]
    return {'mode': 'shape-check', 'parameters': total, 'weights_gb_bf16': total * 2 / 2**30,
            'lora_parameters': lora_params, 'lora_tensors': len(trainable),
            'lora_tensors_in_vision_tower': len(in_vision),
            # bf16 weights + fp32 LoRA weights, grads and two Adam moments.
            'lora_floor_gb': (total * 2 + lora_params * 16) / 2**30,
            # bf16 weights and grads + fp32 Adam moments and master copy (mixed precision).
            'full_floor_gb': total * (2 + 2 + 12) / 2**30}


def _device_name(cuda: bool) -> str:
    import torch

    if cuda:
        return torch.cuda.get_device_name()
    return f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads'


def _store(args, result: dict) -> None:
    result['date'] = datetime.datetime.now().isoformat(timespec='seconds')
    merge_result(args.out, result['mode'], result)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.shape_check:
        result = _shape_check()
        print(json.dumps(result, indent=1))
        _store(args, result)
    else:
        _measure(args)
    return 0


if __name__ == '__main__':
    sys.exit(main())

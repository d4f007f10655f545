"""Glue from our configs to TRL's ``SFTTrainer`` and ``GRPOTrainer``, then the export.

One function per stage: load the model and the dataset, train, merge and save a checkpoint the
reward backend loads, and return what happened. TRL, peft and datasets are imported here only.
"""
from dataclasses import asdict, dataclass, field
import logging
import os
import time
from typing import Any, Sequence

from sole_r1_ros.finetune import dataset as dataset_module
from sole_r1_ros.finetune import export, model as model_module
from sole_r1_ros.finetune.config import GrpoConfig, SftConfig, TrainConfig
from sole_r1_ros.finetune.model import Precision
from sole_r1_ros.finetune.rewards import make_reward_functions

logger = logging.getLogger(__name__)

TRAINER_DIR = 'trainer'
'''Subfolder of the output folder for TRL's own files (intermediate checkpoints).'''


@dataclass(frozen=True)
class FinetuneResult:
    """What one stage did."""

    stage: str
    checkpoint: str | None
    '''Exported checkpoint folder; None when the config turned export off.'''
    steps: int
    '''Optimizer steps taken.'''
    train_s: float
    '''Wall time of ``trainer.train()`` [s] (model and data loading excluded).'''
    log_history: list[dict[str, Any]] = field(default_factory=list)
    '''TRL's logged metrics, one dict per logging step (loss, rewards/..., grad_norm).'''


def _require_trl() -> None:
    try:
        import datasets  # noqa: F401
        import peft  # noqa: F401
        import trl  # noqa: F401
    except ImportError as exc:
        raise ImportError('fine-tuning needs trl, peft and datasets: pip install -r '
                          'requirements/base.txt (trl==1.16.0, peft, datasets)') from exc


def _common_arguments(train: TrainConfig, precision: Precision) -> dict[str, Any]:
    return {
        'output_dir': os.path.join(train.output_dir, TRAINER_DIR),
        'per_device_train_batch_size': train.batch_size,
        'gradient_accumulation_steps': train.grad_accum,
        'learning_rate': train.learning_rate, 'num_train_epochs': train.epochs,
        'max_steps': train.max_steps or -1, 'warmup_steps': train.warmup_steps,
        'lr_scheduler_type': train.lr_scheduler,
        'bf16': precision.bf16, 'use_cpu': precision.device == 'cpu',
        # transformers 5 names it activation checkpointing (the old names warn).
        'activation_checkpointing': train.gradient_checkpointing,
        'activation_checkpointing_kwargs': {'use_reentrant': False},
        'optim': train.optim, 'seed': train.seed, 'data_seed': train.seed,
        'logging_steps': train.logging_steps,
        'save_strategy': 'steps' if train.save_steps else 'no',
        'save_steps': train.save_steps or 500, 'save_total_limit': 2, 'report_to': 'none',
        # Our rows are built by a transform from plain columns; dropping "unused" columns
        # would delete what the transform reads.
        'remove_unused_columns': False, 'dataloader_num_workers': 0,
    }


def _finish(stage: str, trainer: Any, processor: Any, train: TrainConfig, settings: Any,
            train_s: float, data_dir: str) -> FinetuneResult:
    history = list(trainer.state.log_history)
    checkpoint = None
    if train.export:
        metadata = {'stage': stage, 'data': os.path.abspath(data_dir), 'config': asdict(settings),
                    'steps': trainer.state.global_step, 'train_s': round(train_s, 3),
                    'log_history': history}
        with _signals_deferred('the export'):   # minutes for 8B: a signal must not lose it
            checkpoint = export.export_checkpoint(trainer.model, processor, train.output_dir,
                                                  metadata)
    logger.info('%s: %d steps in %.1f s', stage, trainer.state.global_step, train_s)
    return FinetuneResult(stage, checkpoint, trainer.state.global_step, train_s, history)


RUN_FILE = 'run.json'
'''In ``trainer/``: what the run its checkpoints belong to trains (stage, data, model).'''


def start_run(output_dir: str, stage: str, data_dir: str, model: str, resume: bool) -> None:
    """A new run empties ``trainer/``; a resumed one must be the same run.

    After ``--overwrite`` the old run's checkpoints stayed beside the new one's, and
    ``--resume`` went on from the newest by step number: the old run's, exported under the
    new run's data and settings.

    Raises:
        ValueError: ``resume`` with checkpoints of another stage, data or model.
    """
    import json
    import shutil

    folder = os.path.join(output_dir, TRAINER_DIR)
    path = os.path.join(folder, RUN_FILE)
    this = {'stage': stage, 'data': os.path.abspath(data_dir), 'model': model}
    if resume:
        try:
            with open(path, encoding='utf-8') as stream:
                before = json.load(stream)
        except (OSError, ValueError):
            before = None   # a run of an older version: nothing to compare
        changed = [f'{key} {before.get(key)!r}, not {value!r}' for key, value in this.items()
                   if before is not None and before.get(key) != value]
        if changed:
            raise ValueError(f'--resume: the checkpoints in {folder} are of another run ('
                             + '; '.join(changed) + '): resume that run, or start this one '
                             'in a new --out')
    elif os.path.isdir(folder):
        shutil.rmtree(folder)   # --overwrite: the old run's checkpoints are not this run's
    os.makedirs(folder, exist_ok=True)
    with open(path, 'w', encoding='utf-8') as stream:
        json.dump(this, stream)


def check_resumable(output_dir: str) -> str:
    """The newest complete TRL checkpoint a run in ``output_dir`` left.

    A checkpoint's ``trainer_state.json`` is written last: one without it was cut off (a
    kill during the save a Ctrl-C began), and resuming from it failed with no word of the
    complete one before it.

    Raises:
        ValueError: there is none.
    """
    import re

    folder = os.path.join(output_dir, TRAINER_DIR)
    found = sorted(((int(match.group(1)), name) for name in (
        os.listdir(folder) if os.path.isdir(folder) else ())
        if (match := re.fullmatch(r'checkpoint-(\d+)', name))), reverse=True)
    for _, name in found:
        checkpoint = os.path.join(folder, name)
        if os.path.isfile(os.path.join(checkpoint, 'trainer_state.json')):
            return checkpoint
        logger.warning('%s is incomplete (no trainer_state.json, cut off while saving): '
                       'skipped', checkpoint)
    raise ValueError(f'--resume: no complete TRL checkpoint in {folder} (a run keeps them with '
                     '--save-steps N)')


def _signals_deferred(what: str):
    """A context in which a first SIGINT/SIGTERM waits for ``what`` to end; a second aborts.

    KeyboardInterrupt is raised once it has ended. Outside the main thread: nothing changes.
    """
    import contextlib
    import signal
    import threading

    @contextlib.contextmanager
    def deferred():
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        got: list[int] = []

        def handle(signum, frame) -> None:
            if got:
                raise KeyboardInterrupt
            got.append(signum)
            logger.warning('%s: finishing %s first (a second signal aborts it)',
                           signal.Signals(signum).name, what)
        previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if got:
            raise KeyboardInterrupt
    return deferred()


def _train(trainer: Any, train: TrainConfig) -> float:
    """``trainer.train()``, from the newest checkpoint of its run with ``train.resume``.

    Ctrl-C or SIGTERM (in the main thread) ends the step in progress, writes a TRL checkpoint
    in ``trainer/`` and raises KeyboardInterrupt: ``--resume`` goes on from it. Without
    ``--save-steps`` a stopped run kept nothing but an empty ``trainer/``. A second signal
    stops at once.
    """
    import signal
    import threading

    start = time.perf_counter()
    checkpoint = check_resumable(train.output_dir) if train.resume else None
    if checkpoint:
        logger.info('resuming from %s', checkpoint)
    stop = _stop_on_signal()
    trainer.add_callback(stop)
    main = threading.current_thread() is threading.main_thread()
    previous = ({s: signal.signal(s, stop.handle) for s in (signal.SIGINT, signal.SIGTERM)}
                if main else {})
    try:
        trainer.train(resume_from_checkpoint=checkpoint)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if stop.signum is not None:
        logger.warning('stopped by %s after step %d: checkpoint-%d in %s; --resume goes on '
                       'from it', signal.Signals(stop.signum).name, trainer.state.global_step,
                       trainer.state.global_step, os.path.join(train.output_dir, TRAINER_DIR))
        raise KeyboardInterrupt
    return time.perf_counter() - start


def _stop_on_signal():
    """A TRL callback that saves and stops at the end of the step a signal came in."""
    from transformers import TrainerCallback

    class StopOnSignal(TrainerCallback):
        signum: int | None = None

        def handle(self, signum, frame) -> None:
            if self.signum is not None:   # the second: at once
                raise KeyboardInterrupt
            self.signum = signum

        def on_step_end(self, args, state, control, **kwargs):
            if self.signum is not None:
                control.should_save = control.should_training_stop = True
            return control
    return StopOnSignal()


def run_sft(config: SftConfig, data_dir: str, callbacks: Sequence[Any] = ()) -> FinetuneResult:
    """Supervised fine-tuning on the dataset folder ``data_dir``; loss on the completion only.

    Raises:
        FileNotFoundError, ValueError: bad dataset or model path (see ``finetune.dataset``).
        ImportError: trl/peft/datasets are not installed.
    """
    _require_trl()
    from trl import SFTConfig, SFTTrainer

    train = config.train
    precision = model_module.resolve_precision(train)
    data = dataset_module.build_dataset(data_dir, 'sft', train.dropout, train.max_examples)
    start_run(train.output_dir, 'sft', data_dir, train.model, train.resume)
    model, processor = model_module.load_model(train, precision)
    arguments = SFTConfig(max_length=config.max_length, completion_only_loss=True,
                          **_common_arguments(train, precision))
    trainer = SFTTrainer(model=model, args=arguments, train_dataset=data,
                         processing_class=processor, peft_config=model_module.lora_config(train),
                         callbacks=list(callbacks))
    return _finish('sft', trainer, processor, train, config, _train(trainer, train),
                   data_dir)


def run_grpo(config: GrpoConfig, data_dir: str, callbacks: Sequence[Any] = ()
             ) -> FinetuneResult:
    """GRPO on the dataset folder ``data_dir`` with the format + accuracy progress reward.

    Raises:
        FileNotFoundError, ValueError: bad dataset or model path, or beta > 0 with full
            tuning of a model that is not a checkpoint folder (TRL reloads the reference).
        ImportError: trl/peft/datasets are not installed.
    """
    _require_trl()
    from trl import GRPOConfig as TrlGrpoConfig, GRPOTrainer

    train = config.train
    if config.beta > 0 and train.method == 'full' and not os.path.isdir(train.model):
        raise ValueError('beta > 0 with full fine-tuning reloads the reference model from '
                         f'the checkpoint folder; {train.model!r} is not one (use --lora)')
    precision = model_module.resolve_precision(train)
    data = dataset_module.build_dataset(data_dir, 'grpo', train.dropout, train.max_examples)
    start_run(train.output_dir, 'grpo', data_dir, train.model, train.resume)
    model, processor = model_module.load_model(train, precision)
    reward_functions, weights = make_reward_functions(config.reward)
    arguments = TrlGrpoConfig(
        num_generations=config.num_generations,
        max_completion_length=config.max_completion_length, beta=config.beta,
        temperature=config.temperature, top_p=config.top_p, top_k=config.top_k,
        reward_weights=weights, **_common_arguments(train, precision))
    trainer = GRPOTrainer(model=model, reward_funcs=reward_functions, args=arguments,
                          train_dataset=data, processing_class=processor,
                          peft_config=model_module.lora_config(train), callbacks=list(callbacks))
    return _finish('grpo', trainer, processor, train, config, _train(trainer, train),
                   data_dir)

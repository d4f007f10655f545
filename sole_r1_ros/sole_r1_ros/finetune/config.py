"""Frozen configs of the two fine-tuning stages; ``sole-r1 finetune`` only fills them in.

``TrainConfig`` holds what both stages share (model, LoRA or full, optimisation, precision);
``SftConfig`` and ``GrpoConfig`` add each stage's own settings.
"""
from dataclasses import dataclass, field
import math

from sole_r1_ros.finetune.dropout import PreviousDropoutConfig
from sole_r1_ros.finetune.rewards import ProgressRewardConfig

METHODS = ('lora', 'full')
SWITCHES = ('auto', 'on', 'off')
DEVICES = ('auto', 'cpu', 'cuda')
SCHEDULERS = ('cosine', 'linear', 'constant', 'constant_with_warmup')
# The language model's attention and MLP projections of Qwen3-VL; the vision tower's layers
# have other names (qkv, proj, linear_fc1/2), so LoRA leaves the vision tower untouched.
LORA_TARGETS = ('q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj')


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f'{name} must be a finite number > 0, got {value}')


@dataclass(frozen=True)
class TrainConfig:
    """Settings both stages share."""

    model: str
    '''Qwen3-VL checkpoint folder (SOLE-R1-8B, Qwen3-VL-8B-Instruct, an SFT output),
    'tiny-random' (tests, dry runs) or '8b-random' (benchmarks).'''
    output_dir: str
    '''Folder of the exported checkpoint (loadable by ``sole-r1 score --model``); TRL's own
    files go to its ``trainer/`` subfolder.'''
    method: str = 'lora'
    ''''lora' (adapters on the language model, merged at export) or 'full'.'''
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = LORA_TARGETS
    '''Module names inside the language model that get adapters.'''
    train_vision: bool = False
    '''Full fine-tuning only: also train the vision tower (frozen by default).'''
    epochs: float = 1.0
    max_steps: int | None = None
    '''Optimizer steps; overrides ``epochs`` when set.'''
    learning_rate: float = 1e-4
    batch_size: int = 1
    '''Examples per device per forward pass (GRPO: completions per forward pass).'''
    grad_accum: int = 8
    '''Forward passes per optimizer step.'''
    warmup_steps: int = 0
    lr_scheduler: str = 'cosine'
    '''transformers scheduler name after warm-up ('cosine', 'linear', 'constant').'''
    bf16: str = 'auto'
    ''''auto': bfloat16 weights and autocast on a CUDA GPU that supports it, float32 on CPU.'''
    gradient_checkpointing: bool = False
    '''Recompute activations in the backward pass: less memory, about 30% slower.'''
    device: str = 'auto'
    optim: str = 'adamw_torch'
    '''transformers optimizer name ('adamw_torch', 'adafactor', ...).'''
    seed: int = 0
    logging_steps: int = 10
    save_steps: int = 0
    '''Also keep TRL checkpoints every this many steps in ``trainer/`` (0: only the export).'''
    max_examples: int | None = None
    '''Use only the first N examples of the dataset (smoke runs).'''
    dropout: PreviousDropoutConfig = field(default_factory=PreviousDropoutConfig)
    export: bool = True
    '''Merge and save the checkpoint at the end (benchmarks turn it off).'''

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("model must be a checkpoint folder, 'tiny-random' or '8b-random'")
        if not self.output_dir:
            raise ValueError('output_dir must be a folder path, got an empty string')
        for name, value, choices in (('method', self.method, METHODS),
                                     ('bf16', self.bf16, SWITCHES),
                                     ('device', self.device, DEVICES),
                                     ('lr_scheduler', self.lr_scheduler, SCHEDULERS)):
            if value not in choices:
                raise ValueError(f'{name} must be one of {choices}, got {value!r}')
        for name in ('lora_rank', 'lora_alpha', 'batch_size', 'grad_accum', 'logging_steps'):
            if getattr(self, name) < 1:
                raise ValueError(f'{name} must be >= 1, got {getattr(self, name)}')
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f'lora_dropout must be in [0, 1), got {self.lora_dropout}')
        if not self.lora_targets:
            raise ValueError('lora_targets must name at least one module')
        if self.train_vision and self.method == 'lora':
            raise ValueError('train_vision needs method=full (LoRA adapts the language model)')
        _positive('learning_rate', self.learning_rate)
        _positive('epochs', self.epochs)
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f'max_steps must be >= 1 or None, got {self.max_steps}')
        for name in ('warmup_steps', 'save_steps', 'seed'):
            if getattr(self, name) < 0:
                raise ValueError(f'{name} must be >= 0, got {getattr(self, name)}')
        if self.max_examples is not None and self.max_examples < 1:
            raise ValueError(f'max_examples must be >= 1 or None, got {self.max_examples}')


@dataclass(frozen=True)
class SftConfig:
    """Supervised fine-tuning on ``<think>…</think><answer>N%</answer>`` targets."""

    train: TrainConfig
    max_length: int | None = None
    '''Truncate longer sequences [tokens]. None keeps all: one SOLE-R1 query is ~1200 tokens
    (888 image tokens), and cutting into the image tokens breaks the example.'''

    def __post_init__(self) -> None:
        if self.max_length is not None and self.max_length < 16:
            raise ValueError(f'max_length must be >= 16 or None, got {self.max_length}')


@dataclass(frozen=True)
class GrpoConfig:
    """GRPO with the verifiable progress reward (``finetune.rewards``)."""

    train: TrainConfig
    num_generations: int = 8
    '''Completions sampled per prompt; their rewards form one GRPO group.'''
    max_completion_length: int = 200
    '''Longest completion [tokens] (the authors' 200 new tokens).'''
    beta: float = 0.0
    '''KL coefficient to the starting policy; 0 (TRL's default) loads no reference model.'''
    temperature: float = 1.0
    top_p: float = 0.9
    top_k: int = 50
    '''Sampling of completions: the authors' reward-time settings.'''
    reward: ProgressRewardConfig = field(default_factory=ProgressRewardConfig)

    def __post_init__(self) -> None:
        if self.num_generations < 2:
            raise ValueError(f'num_generations must be >= 2 (GRPO compares completions of a '
                             f'prompt), got {self.num_generations}')
        per_step = self.train.batch_size * self.train.grad_accum
        if per_step % self.num_generations:
            raise ValueError(f'batch_size x grad_accum ({per_step}) must be a multiple of '
                             f'num_generations ({self.num_generations}): each optimizer step '
                             'holds whole groups')
        if self.max_completion_length < 1:
            raise ValueError(f'max_completion_length must be >= 1, got '
                             f'{self.max_completion_length}')
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f'beta must be a finite number >= 0, got {self.beta}')
        _positive('temperature', self.temperature)
        if not 0 < self.top_p <= 1:
            raise ValueError(f'top_p must be in (0, 1], got {self.top_p}')
        if self.top_k < 0:
            raise ValueError(f'top_k must be >= 0, got {self.top_k}')

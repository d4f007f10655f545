"""Frozen configs of the two fine-tuning stages; ``sole-r1 finetune`` only fills them in.

Fields carry their help text and limits (``configuration.option``), so the command builds them
with ``configuration.from_mapping`` and one validator checks them.

``TrainConfig`` holds what both stages share (model, LoRA or full, optimisation, precision);
``SftConfig`` and ``GrpoConfig`` add each stage's own settings.
"""
from dataclasses import dataclass

from sole_r1_ros.configuration import option, validate
from sole_r1_ros.finetune.dropout import PreviousDropoutConfig
from sole_r1_ros.finetune.rewards import ProgressRewardConfig

METHODS = ('lora', 'full')
SWITCHES = ('auto', 'on', 'off')
DEVICES = ('auto', 'cpu', 'cuda')
SCHEDULERS = ('cosine', 'linear', 'constant', 'constant_with_warmup')
# The language model's attention and MLP projections of Qwen3-VL; the vision tower's layers
# have other names (qkv, proj, linear_fc1/2), so LoRA leaves the vision tower untouched.
LORA_TARGETS = ('q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj')


@dataclass(frozen=True)
class TrainConfig:
    """Settings both stages share."""

    model: str = option(help=('Qwen3-VL checkpoint folder (SOLE-R1-8B, Qwen3-VL-8B-Instruct, '
                              "an SFT output), 'tiny-random' (tests, dry runs) or '8b-random' "
                              '(benchmarks)'))
    output_dir: str = option(help='folder of the exported checkpoint (loadable by sole-r1 score '
                             "--model); TRL's own files go to its trainer/ subfolder")
    method: str = option('lora', "'lora' (adapters on the language model, merged at export) or "
                         "'full'", choices=METHODS)
    lora_rank: int = option(16, 'LoRA rank', range=(1, 4096))
    lora_alpha: int = option(32, 'LoRA alpha', range=(1, 65536))
    lora_dropout: float = option(0.05, 'dropout on the LoRA path', range=(0.0, 0.999))
    lora_targets: tuple[str, ...] = option(LORA_TARGETS, 'module names inside the language '
                                           'model that get adapters')
    train_vision: bool = option(False, 'full fine-tuning only: also train the vision tower '
                                '(frozen by default)')
    epochs: float = option(1.0, 'passes over the dataset', range=(1e-9, 1e9))
    max_steps: int | None = option(None, 'optimizer steps; overrides epochs when set',
                                   range=(1, None))
    learning_rate: float = option(1e-4, 'peak learning rate', range=(1e-12, 10.0))
    batch_size: int = option(1, 'examples per device per forward pass (GRPO: completions per '
                             'forward pass)', range=(1, 65536))
    grad_accum: int = option(8, 'forward passes per optimizer step', range=(1, 65536))
    warmup_steps: int = option(0, 'linear warm-up [steps]', range=(0, None))
    lr_scheduler: str = option('cosine', 'transformers scheduler name after warm-up',
                               choices=SCHEDULERS)
    bf16: str = option('auto', "'auto': bfloat16 weights and autocast on a CUDA GPU that "
                       'supports it, float32 on CPU', choices=SWITCHES)
    gradient_checkpointing: bool = option(False, 'recompute activations in the backward pass: '
                                          'less memory, about 30% slower')
    device: str = option('auto', "'auto', 'cpu' or 'cuda'", choices=DEVICES)
    optim: str = option('adamw_torch', "transformers optimizer name ('adamw_torch', "
                        "'adafactor', ...)")
    seed: int = option(0, 'seed of initialisation, data order and sampling', range=(0, None))
    logging_steps: int = option(10, 'log every this many steps', range=(1, None))
    save_steps: int = option(0, 'also keep TRL checkpoints every this many steps in trainer/ '
                             '(0: only the export); the last 2 are kept', range=(0, None))
    resume: bool = option(False, 'continue from the newest TRL checkpoint in trainer/ (a run '
                          'stopped or killed part way; needs save_steps)')
    max_examples: int | None = option(None, 'use only the first N examples of the dataset '
                                      '(smoke runs)', range=(1, None))
    dropout: PreviousDropoutConfig = option(default_factory=PreviousDropoutConfig,
                                            help='previous-progress dropout')
    export: bool = option(True, 'merge and save the checkpoint at the end (benchmarks turn it '
                          'off)')

    def __post_init__(self) -> None:
        validate(self)
        if not self.model:
            raise ValueError("model must be a checkpoint folder, 'tiny-random' or '8b-random'")
        if not self.output_dir:
            raise ValueError('output_dir must be a folder path, got an empty string')
        if not self.lora_targets:
            raise ValueError('lora_targets must name at least one module')
        if self.train_vision and self.method == 'lora':
            raise ValueError('train_vision needs method=full (LoRA adapts the language model)')


@dataclass(frozen=True)
class SftConfig:
    """Supervised fine-tuning on ``<think>...</think><answer>N%</answer>`` targets."""

    train: TrainConfig = option(help='settings both stages share')
    max_length: int | None = option(None, 'truncate longer sequences [tokens]. None keeps all: '
                                    'one SOLE-R1 query is ~1200 tokens (888 image tokens), and '
                                    'cutting into the image tokens breaks the example',
                                    range=(16, None))

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class GrpoConfig:
    """GRPO with the verifiable progress reward (``finetune.rewards``)."""

    train: TrainConfig = option(help='settings both stages share')
    num_generations: int = option(8, 'completions sampled per prompt; their rewards form one '
                                  'GRPO group', range=(2, 4096))
    max_completion_length: int = option(200, "longest completion [tokens] (the authors' 200 "
                                        'new tokens)', range=(1, None))
    beta: float = option(0.0, "KL coefficient to the starting policy; 0 (TRL's default) loads "
                         'no reference model', range=(0.0, None))
    temperature: float = option(1.0, "sampling temperature of completions (the authors' "
                                'reward-time setting)', range=(1e-6, 100.0))
    top_p: float = option(0.9, 'nucleus sampling mass of completions', range=(1e-6, 1.0))
    top_k: int = option(50, 'top-k filtering of completions; 0 disables it', range=(0, None))
    reward: ProgressRewardConfig = option(default_factory=ProgressRewardConfig,
                                          help='the progress reward')

    def __post_init__(self) -> None:
        validate(self)
        per_step = self.train.batch_size * self.train.grad_accum
        if per_step % self.num_generations:
            raise ValueError(f'batch_size x grad_accum ({per_step}) must be a multiple of '
                             f'num_generations ({self.num_generations}): each optimizer step '
                             'holds whole groups')

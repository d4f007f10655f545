"""The model to fine-tune, its processor, precision and LoRA settings.

Models come from the reward backend's builders (``reward.backends.qwen``): a checkpoint folder
loads with the image processor configured explicitly to SOLE-R1's settings, and 'tiny-random' /
'8b-random' build random Qwen3-VL models with the local tokenizer. Training therefore sees
exactly the processor the reward node will use with the tuned checkpoint.
"""
from dataclasses import dataclass
import logging
import os
from typing import Any

from sole_r1_ros.finetune.config import TrainConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Precision:
    """Where and in which dtype training runs."""

    device: str
    '''cpu or cuda.'''
    bf16: bool
    '''bfloat16 weights and autocast; float32 otherwise.'''


def resolve_precision(config: TrainConfig) -> Precision:
    """Pick the device and dtype for ``config`` ('auto': bf16 on a capable GPU, else fp32).

    Raises:
        ValueError: CUDA or bf16 asked for but not available.
    """
    import torch

    cuda = torch.cuda.is_available()
    device = ('cuda' if cuda else 'cpu') if config.device == 'auto' else config.device
    if device == 'cuda' and not cuda:
        raise ValueError("device is 'cuda' but CUDA is not available")
    capable = device == 'cuda' and torch.cuda.is_bf16_supported()
    if config.bf16 == 'on' and not capable:
        raise ValueError('bf16=on needs a CUDA GPU with bfloat16 support; use --bf16 auto/off')
    return Precision(device, capable if config.bf16 == 'auto' else config.bf16 == 'on')


def load_model(config: TrainConfig, precision: Precision) -> tuple[Any, Any]:
    """Return (Qwen3-VL model, image-only processor) ready for training.

    Raises:
        FileNotFoundError: the checkpoint folder does not exist.
        ValueError: it is not a Qwen3-VL checkpoint.
        ImportError: torch/transformers are missing.
    """
    import torch

    from sole_r1_ros.reward.backends import qwen

    dtype = torch.bfloat16 if precision.bf16 else torch.float32
    if config.method == 'full' and precision.bf16:
        # AdamW then updates bf16 weights with no float32 copy: a step under half a bf16 unit
        # is lost (measured: at lr 1e-5, 85 % of the language model's projections did not move
        # in 3 steps). LoRA's adapters are float32; float32 weights take twice the memory.
        logger.warning('full fine-tuning in bf16 keeps no float32 weights: small updates round '
                       'away (at lr 1e-5 most weights never change); prefer LoRA (the '
                       'default), or --bf16 off for float32 weights (twice the memory)')
    if config.model == 'tiny-random':
        model, processor = qwen.build_tiny(seed=config.seed)
        model = model.to(device=precision.device, dtype=dtype)
    elif config.model == '8b-random':
        model, processor = qwen.build_random_8b(precision.device, dtype)
    else:
        path = os.path.abspath(os.path.expanduser(config.model))
        model, processor = qwen.load_checkpoint(path, precision.device, dtype, 'sdpa')
    if config.method == 'full' and not config.train_vision:
        model.model.visual.requires_grad_(False)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info('model %s on %s (%s): %.1f M parameters, %.1f M trainable before LoRA',
                config.model, precision.device, dtype, model.num_parameters() / 1e6,
                trainable / 1e6)
    return model, processor


def lora_config(config: TrainConfig) -> Any:
    """A peft ``LoraConfig`` on the language model's projections, or None for full tuning."""
    if config.method != 'lora':
        return None
    from peft import LoraConfig

    names = '|'.join(config.lora_targets)
    return LoraConfig(
        r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
        # A regex on the full module path keeps the adapters out of the vision tower.
        target_modules=rf'.*language_model.*\.({names})', task_type='CAUSAL_LM')

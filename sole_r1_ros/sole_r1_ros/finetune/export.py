"""Save a tuned model as a checkpoint folder the transformers reward backend loads directly.

LoRA adapters are merged into the weights first, so the folder is a plain Qwen3-VL checkpoint:
``config.json`` + safetensors, the tokenizer with its chat template, and a
``preprocessor_config.json`` with SOLE-R1's image settings (mean = std = 0.5, bicubic, 16/2/2).
``RewardConfig(backend='transformers', model=DIR)`` and ``sole-r1 score --model DIR`` load it.
"""
import json
import logging
import os
import shutil
from typing import Any

logger = logging.getLogger(__name__)

METADATA = 'finetune.json'


def merged_model(model: Any) -> Any:
    """The plain transformers model: LoRA adapters merged in, peft wrappers removed."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        return model.merge_and_unload()
    return model


def export_checkpoint(model: Any, processor: Any, output_dir: str,
                      metadata: dict[str, Any]) -> str:
    """Write ``model`` (merged) and ``processor`` to ``output_dir``; return the folder.

    ``metadata`` (stage, config, metrics) goes to ``finetune.json`` beside the weights. The
    files are written into ``.export-new/`` first and moved in once all are there, the last
    export's moved out: cut off over an earlier export, a sharded save left new and old
    shards side by side, which loaded without a word. ``trainer/`` is left alone.
    """
    from sole_r1_ros.reward.backends import qwen

    os.makedirs(output_dir, exist_ok=True)
    staging, previous = (os.path.join(output_dir, name) for name in _EXPORT_DIRS)
    for folder in (staging, previous):
        shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(staging)
    model = merged_model(model)
    model.save_pretrained(staging)
    tokenizer = processor.tokenizer
    if not getattr(tokenizer, 'chat_template', None):
        tokenizer.chat_template = processor.chat_template
    tokenizer.save_pretrained(staging)
    # The backend configures its image processor itself; this file documents the settings
    # for other tools (vLLM, AutoProcessor with torchvision).
    qwen.make_image_processor().save_pretrained(staging)
    _name_public_processor(staging)
    with open(os.path.join(staging, METADATA), 'w', encoding='utf-8') as stream:
        json.dump(metadata, stream, indent=1, default=str)
    os.makedirs(previous)
    for name in os.listdir(output_dir):   # the last export out of the way, then this one in
        if name not in (*_EXPORT_DIRS, _TRAINER_DIR):
            os.replace(os.path.join(output_dir, name), os.path.join(previous, name))
    for name in os.listdir(staging):
        os.replace(os.path.join(staging, name), os.path.join(output_dir, name))
    for folder in (staging, previous):
        shutil.rmtree(folder, ignore_errors=True)
    logger.info('exported %s checkpoint to %s', metadata.get('stage', 'tuned'), output_dir)
    return output_dir


_EXPORT_DIRS = ('.export-new', '.export-previous')
_TRAINER_DIR = 'trainer'   # trainers.TRAINER_DIR (that module imports this one)


def _name_public_processor(output_dir: str) -> None:
    """Name transformers' Qwen3VLProcessor in the saved configs, as the authors' files do.

    The tokenizer saved from our ``qwen.ImageOnlyProcessor`` names that private class, and
    ``AutoProcessor`` on the folder then fell back to a bare tokenizer that drops the images.
    """
    for name in ('tokenizer_config.json', 'preprocessor_config.json'):
        path = os.path.join(output_dir, name)
        if not os.path.isfile(path):
            continue
        with open(path, encoding='utf-8') as stream:
            config = json.load(stream)
        config['processor_class'] = 'Qwen3VLProcessor'
        with open(path, 'w', encoding='utf-8') as stream:
            json.dump(config, stream, indent=2, ensure_ascii=False)


def check_checkpoint(output_dir: str) -> None:
    """Cheap load check without the weights: config type, tokenizer and chat template.

    Raises:
        ValueError: not a Qwen3-VL checkpoint, or no chat template.
    """
    from transformers import AutoConfig, AutoTokenizer

    model_type = AutoConfig.from_pretrained(output_dir, local_files_only=True).model_type
    if model_type != 'qwen3_vl':
        raise ValueError(f'{output_dir} holds a {model_type!r} model, not qwen3_vl')
    tokenizer = AutoTokenizer.from_pretrained(output_dir, local_files_only=True)
    if not getattr(tokenizer, 'chat_template', None):
        raise ValueError(f'{output_dir}: the saved tokenizer has no chat template')

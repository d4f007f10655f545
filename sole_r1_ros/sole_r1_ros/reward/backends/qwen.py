"""Qwen3-VL models and processors without the hub or torchvision.

Three sources: a local checkpoint folder (SOLE-R1-8B or any Qwen3-VL), 'tiny-random' (a few
hundred thousand random weights of the real architecture with a locally trained BPE tokenizer,
for tests and dry runs), and '8b-random' (random weights of the real 8B shape, for benchmarks).
All three go through the same image-only processor, configured here explicitly to what the
SOLE-R1 checkpoint expects, so nothing is read from or written to the checkpoint's processor
files.
"""
import json
import logging
import os
from typing import Any

try:
    import torch
    from transformers import (
        AutoConfig, AutoModelForImageTextToText, AutoTokenizer, PreTrainedTokenizerFast,
        Qwen3VLConfig, Qwen3VLForConditionalGeneration, Qwen3VLProcessor)
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil)
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError('the transformers reward backend needs torch and transformers>=5.24: '
                      "pip install 'sole_r1_ros[model]'") from exc

logger = logging.getLogger(__name__)

# The authors' data/preprocessor_config.json (what SOLE-R1 was trained with). Their file names
# Qwen2VLImageProcessorFast, which needs torchvision; the PIL variant takes the same settings.
IMAGE_PROCESSOR_SETTINGS: dict[str, Any] = {
    'image_mean': [0.5, 0.5, 0.5],
    'image_std': [0.5, 0.5, 0.5],
    'resample': 3,  # PIL bicubic
    'patch_size': 16,
    'merge_size': 2,
    'temporal_patch_size': 2,
    'size': {'shortest_edge': 65536, 'longest_edge': 16777216},
    'do_resize': True,
    'do_rescale': True,
    'rescale_factor': 1 / 255,
    'do_normalize': True,
    'do_convert_rgb': True,
}

QWEN_SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|vision_start|>',
                       '<|vision_end|>', '<|vision_pad|>', '<|image_pad|>', '<|video_pad|>']

# Renders a system turn and user turns of text and images exactly as Qwen3-VL's own template
# does (no tools, no vision ids), then the generation prompt.
QWEN_CHAT_TEMPLATE = (
    '{%- for message in messages %}'
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string %}{{- message['content'] }}"
    "{%- else %}{%- for content in message['content'] %}"
    "{%- if content['type'] == 'image' %}{{- '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif content['type'] == 'text' %}{{- content['text'] }}{%- endif %}"
    '{%- endfor %}{%- endif %}'
    "{{- '<|im_end|>\\n' }}"
    '{%- endfor %}'
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# Qwen/Qwen3-VL-8B-Instruct config.json (text and vision towers); token ids come from the
# tokenizer in use, so a random 8B model can run with the local tokenizer.
QWEN3_VL_8B_TEXT = {
    'vocab_size': 151936, 'hidden_size': 4096, 'intermediate_size': 12288,
    'num_hidden_layers': 36, 'num_attention_heads': 32, 'num_key_value_heads': 8,
    'head_dim': 128, 'hidden_act': 'silu', 'max_position_embeddings': 262144,
    'rms_norm_eps': 1e-6, 'attention_bias': False,
    'rope_parameters': {'rope_type': 'default', 'rope_theta': 5_000_000.0,
                        'mrope_section': [24, 20, 20], 'mrope_interleaved': True},
}
QWEN3_VL_8B_VISION = {
    'depth': 27, 'hidden_size': 1152, 'intermediate_size': 4304, 'num_heads': 16,
    'patch_size': 16, 'spatial_merge_size': 2, 'temporal_patch_size': 2, 'in_channels': 3,
    'out_hidden_size': 4096, 'num_position_embeddings': 2304,
    'deepstack_visual_indexes': [8, 16, 24], 'hidden_act': 'gelu_pytorch_tanh',
}
TINY_TEXT = {
    'hidden_size': 64, 'intermediate_size': 128, 'num_hidden_layers': 2,
    'num_attention_heads': 4, 'num_key_value_heads': 2, 'head_dim': 16,
    'rope_parameters': {'rope_type': 'default', 'rope_theta': 10000.0,
                        'mrope_section': [4, 2, 2], 'mrope_interleaved': True},
}
# One narrow vision block: its attention over all 3552 patches of a composite is what costs
# time on a CPU, and tests only need the real code path, not capacity.
TINY_VISION = {
    'depth': 1, 'hidden_size': 32, 'intermediate_size': 64, 'num_heads': 2, 'patch_size': 16,
    'spatial_merge_size': 2, 'temporal_patch_size': 2, 'out_hidden_size': 64,
    'num_position_embeddings': 256, 'deepstack_visual_indexes': [0],
}


class ImageOnlyProcessor(Qwen3VLProcessor):
    """Qwen3VLProcessor without the video processor, which needs torchvision.

    ProcessorMixin derives its parts from this ``__init__`` signature, so leaving
    ``video_processor`` out of it skips the torchvision-only class lookup.
    """

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor=image_processor, tokenizer=tokenizer,
                         video_processor=None, chat_template=chat_template, **kwargs)


def make_image_processor() -> Qwen2VLImageProcessorPil:
    """The image processor with the checkpoint's settings (mean = std = 0.5, bicubic, 16/2/2)."""
    return Qwen2VLImageProcessorPil(**IMAGE_PROCESSOR_SETTINGS)


def make_processor(tokenizer: Any, chat_template: str) -> ImageOnlyProcessor:
    """Wrap ``tokenizer`` (left padding, for batched generation) into the image-only processor."""
    tokenizer.padding_side = 'left'
    return ImageOnlyProcessor(make_image_processor(), tokenizer, chat_template)


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on the SOLE-R1 prompts, with the Qwen special tokens."""
    from tokenizers import decoders, models, pre_tokenizers, Tokenizer, trainers

    from sole_r1_ros.reward import protocol

    corpus = [protocol.SYSTEM_PROMPT_TEMPLATE, protocol.USER_QUESTION_TEMPLATE,
              protocol.USER_QUESTION_FROM_ZERO_TEMPLATE,
              '<think>The gripper moved closer to the drawer.</think><answer>-5%</answer>',
              ' '.join(str(i) for i in range(-100, 101))] * 20
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=QWEN_SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token='<|im_end|>', pad_token='<|endoftext|>',
        additional_special_tokens=QWEN_SPECIAL_TOKENS[1:])
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    return tokenizer


def qwen3_vl_config(tokenizer: Any, text: dict[str, Any],
                    vision: dict[str, Any]) -> Qwen3VLConfig:
    """A Qwen3-VL config of the given tower sizes whose special ids match ``tokenizer``."""
    ids = tokenizer.convert_tokens_to_ids
    text = {'vocab_size': len(tokenizer), **text, 'pad_token_id': ids('<|endoftext|>'),
            'eos_token_id': ids('<|im_end|>'), 'bos_token_id': None}
    return Qwen3VLConfig(
        text_config=text, vision_config=dict(vision), image_token_id=ids('<|image_pad|>'),
        video_token_id=ids('<|video_pad|>'), vision_start_token_id=ids('<|vision_start|>'),
        vision_end_token_id=ids('<|vision_end|>'), tie_word_embeddings=False)


def build_tiny(seed: int = 0) -> tuple[Qwen3VLForConditionalGeneration, ImageOnlyProcessor]:
    """Tiny random Qwen3-VL (same weights for the same seed) and its processor, on the CPU."""
    tokenizer = build_tiny_tokenizer()
    config = qwen3_vl_config(tokenizer, TINY_TEXT, TINY_VISION)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3VLForConditionalGeneration(config)
    return model.eval(), make_processor(tokenizer, QWEN_CHAT_TEMPLATE)


def build_random_8b(device: str, dtype: torch.dtype
                    ) -> tuple[Qwen3VLForConditionalGeneration, ImageOnlyProcessor]:
    """Random weights in the real Qwen3-VL-8B shape, built directly on ``device``.

    Use 'meta' to inspect the shape and weight bytes without allocating memory.
    """
    tokenizer = build_tiny_tokenizer()
    config = qwen3_vl_config(tokenizer, QWEN3_VL_8B_TEXT, QWEN3_VL_8B_VISION)
    with torch.device(device):
        model = Qwen3VLForConditionalGeneration._from_config(config, dtype=dtype)
    return model.eval(), make_processor(tokenizer, QWEN_CHAT_TEMPLATE)


def _checkpoint_chat_template(path: str, tokenizer: Any) -> str:
    if getattr(tokenizer, 'chat_template', None):
        return tokenizer.chat_template
    jinja = os.path.join(path, 'chat_template.jinja')
    if os.path.isfile(jinja):
        with open(jinja, encoding='utf-8') as stream:
            return stream.read()
    json_path = os.path.join(path, 'chat_template.json')
    if os.path.isfile(json_path):
        with open(json_path, encoding='utf-8') as stream:
            return json.load(stream)['chat_template']
    raise ValueError(f'checkpoint {path} has no chat template (tokenizer_config.json, '
                     'chat_template.jinja or chat_template.json)')


def load_checkpoint(path: str, device: str, dtype: torch.dtype, attn_implementation: str
                    ) -> tuple[torch.nn.Module, ImageOnlyProcessor]:
    """Load a local Qwen3-VL checkpoint folder, offline and read-only.

    Raises:
        FileNotFoundError: ``path`` is not a folder with a config.json.
        ValueError: the checkpoint is not a Qwen3-VL model or lacks a chat template.
    """
    if not os.path.isfile(os.path.join(path, 'config.json')):
        raise FileNotFoundError(f'no Qwen3-VL checkpoint at {path!r} (expected a folder with '
                                "config.json); use 'tiny-random' for a dry run")
    model_type = AutoConfig.from_pretrained(path, local_files_only=True).model_type
    if model_type != 'qwen3_vl':
        raise ValueError(f'checkpoint {path} is a {model_type!r} model; this backend serves '
                         'Qwen3-VL (qwen3_vl) checkpoints such as SOLE-R1-8B')
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    processor = make_processor(tokenizer, _checkpoint_chat_template(path, tokenizer))
    model = AutoModelForImageTextToText.from_pretrained(
        path, local_files_only=True, dtype=dtype, device_map=device,
        attn_implementation=attn_implementation)
    logger.info('loaded %s (%s) on %s as %s', path, model_type, device, dtype)
    return model.eval(), processor

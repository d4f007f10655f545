"""Local Hugging Face transformers backend: batched ``generate`` on a Qwen3-VL model.

On CUDA it defaults to a static KV cache with the decode step compiled into CUDA graphs, and
pays for that compilation at load (warm-up per batch bucket) instead of on the first rewards.
On CPU it is plain ``generate`` with a dynamic cache. Sampling follows the authors (temperature
1.0, top-p 0.9, top-k 50, 200 new tokens); temperature 0 decodes greedily.
"""
import contextlib
import logging
import os
import time
from typing import Any, Iterator, Sequence

from sole_r1_ros.reward import protocol
from sole_r1_ros.reward.backends import qwen  # raises an ImportError naming the extra
from sole_r1_ros.reward.backends.base import PreparedRequest, RawReply, SamplingSettings
from sole_r1_ros.reward.config import RewardConfig, TransformersConfig

torch = qwen.torch  # imported there, behind the helpful ImportError

logger = logging.getLogger(__name__)

_DTYPES = {'bfloat16': torch.bfloat16, 'float16': torch.float16, 'float32': torch.float32}
# The warm-up's prompt is longer than a real one: the static cache keeps the largest length it
# has seen, so every later prompt fits the compiled decode step. Warmed up on a short goal, a
# longer goal or a wider previous answer ('-35' for '0') recompiled it on a live query (about a
# minute on the GPU; seen with TORCH_LOGS=recompiles on the tiny model).
_WARMUP_GOAL = ('Warm up the reward model with a goal as long as any a person will write: pick up '
                'the red cube from the table, carry it across to the far side of the workspace, '
                'place it gently into the green bowl that stands on the left of the blue plate, '
                'then push the drawer closed and press the button beside it twice')
_WARMUP_PREVIOUS = -100


def resolve_device(name: str) -> str:
    """'auto' -> 'cuda' when available, else 'cpu'."""
    if name == 'auto':
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    if name.startswith('cuda') and not torch.cuda.is_available():
        raise ValueError(f'device is {name!r} but CUDA is not available')
    return name


def resolve_dtype(name: str, device: str) -> torch.dtype:
    """'auto' -> bfloat16 on CUDA (the checkpoint's dtype), float32 on CPU."""
    if name == 'auto':
        return torch.bfloat16 if device.startswith('cuda') else torch.float32
    return _DTYPES[name]


def bucket_size(count: int, buckets: Sequence[int]) -> int:
    """Smallest bucket that holds ``count`` requests (the largest bucket if none does).

    >>> bucket_size(5, (1, 8, 32))
    8
    """
    fitting = [b for b in sorted(buckets) if b >= count]
    return fitting[0] if fitting else max(buckets)


def warmup_request(sampling: SamplingSettings) -> PreparedRequest:
    """The query the warm-up batches: black frames, a prompt longer than a real one."""
    import numpy as np

    black = np.zeros((480, 640, 3), dtype=np.uint8)
    composite = protocol.build_composite(black, black, black, black, black, black)
    return PreparedRequest(protocol.to_model_image(composite),
                           protocol.build_messages(_WARMUP_GOAL, _WARMUP_PREVIOUS), sampling)


class TransformersBackend:
    """Qwen3-VL through transformers; see ``from_config`` for where the weights come from."""

    def __init__(self, model: Any, processor: Any, model_id: str,
                 options: TransformersConfig = TransformersConfig()) -> None:
        self._model = model
        self._processor = processor
        self.model_id = model_id
        self._options = options
        self._device = model.device
        on_cuda = self._device.type == 'cuda'
        self._static_cache = _switch(options.static_cache, on_cuda)
        self._compile = self._static_cache and _switch(options.compile, on_cuda)
        self._warm = _switch(options.warmup, self._compile)
        self._eos_ids = _ids(processor.tokenizer, ('<|im_end|>', '<|endoftext|>'))
        self._pad_id = processor.tokenizer.pad_token_id

    @classmethod
    def from_config(cls, config: RewardConfig) -> 'TransformersBackend':
        """Load ``config.model``: a local checkpoint folder, 'tiny-random' or '8b-random'.

        Raises:
            ValueError: ``config.model`` is empty, or the device/dtype is unusable.
            FileNotFoundError: the checkpoint folder does not exist.
        """
        options = config.transformers
        device = resolve_device(options.device)
        dtype = resolve_dtype(options.dtype, device)
        if not config.model:
            raise ValueError("model must name a Qwen3-VL checkpoint folder, 'tiny-random' or "
                             "'8b-random'; got ''")
        if config.model == 'tiny-random':
            model, processor = qwen.build_tiny()
            model = model.to(device=device, dtype=dtype)
            model_id = 'tiny-random'
        elif config.model == '8b-random':
            model, processor = qwen.build_random_8b(device, dtype)
            model_id = '8b-random'
        else:
            path = os.path.abspath(os.path.expanduser(config.model))
            model, processor = qwen.load_checkpoint(path, device, dtype,
                                                    options.attn_implementation)
            model_id = os.path.basename(path)
        backend = cls(model, processor, model_id, options)
        if backend._warm:
            backend.warmup(SamplingSettings(config.temperature, config.top_p, config.top_k,
                                            config.max_new_tokens,
                                            None if config.seed < 0 else config.seed))
        return backend

    def warmup(self, sampling: SamplingSettings) -> None:
        """Run one full-size batch per bucket so compilation and CUDA graphs exist before use.

        The static cache is sized by prompt length + ``max_new_tokens``: warm up with the
        ``max_new_tokens`` you will serve, or the first real call recompiles.
        """
        request = warmup_request(sampling)
        for size in sorted(set(self._options.batch_buckets)):
            start = time.perf_counter()
            self._generate_batch([request] * size, sampling)
            logger.info('%s warm-up at batch %d took %.1f s', self.model_id, size,
                        time.perf_counter() - start)

    def generate(self, requests: Sequence[PreparedRequest]) -> list[RawReply]:
        """Answer requests in batches of equal sampling settings, in the original order."""
        replies: list[RawReply | None] = [None] * len(requests)
        groups: dict[SamplingSettings, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(request.sampling, []).append(index)
        limit = max(self._options.batch_buckets) if self._static_cache else len(requests)
        for sampling, indices in groups.items():
            for start in range(0, len(indices), max(1, limit)):
                chunk = indices[start:start + limit]
                answers = self._generate_batch([requests[i] for i in chunk], sampling)
                for index, answer in zip(chunk, answers):
                    replies[index] = answer
        return replies

    def _generate_batch(self, requests: list[PreparedRequest],
                        sampling: SamplingSettings) -> list[RawReply]:
        start = time.perf_counter()
        count = len(requests)
        if self._static_cache:
            # Pad to a warmed-up batch size: a new shape would recompile (about a minute).
            padded = bucket_size(count, self._options.batch_buckets)
            requests = requests + [requests[-1]] * (padded - count)
        inputs = self._encode(requests)
        with torch.inference_mode(), _seeded(sampling.seed, self._device):
            output = self._model.generate(**inputs, **self._generation_kwargs(sampling))
        new_tokens = output[:count, inputs['input_ids'].shape[1]:]
        texts = self._processor.batch_decode(new_tokens, skip_special_tokens=True)
        lengths = self._completion_lengths(new_tokens)
        latency_s = time.perf_counter() - start
        return [RawReply(text, latency_s, length) for text, length in zip(texts, lengths)]

    def _encode(self, requests: list[PreparedRequest]) -> dict[str, Any]:
        texts = [self._processor.apply_chat_template(list(r.messages), tokenize=False,
                                                     add_generation_prompt=True)
                 for r in requests]
        extra = {'pad_to_multiple_of': self._options.prompt_pad_multiple} \
            if self._static_cache else {}
        inputs = self._processor(text=texts, images=[r.image for r in requests], padding=True,
                                 return_tensors='pt', **extra)
        inputs = inputs.to(self._device)
        inputs['pixel_values'] = inputs['pixel_values'].to(self._model.dtype)
        return dict(inputs)

    def _generation_kwargs(self, sampling: SamplingSettings) -> dict[str, Any]:
        # Every sampling field is set, so none falls back to the checkpoint's
        # generation_config.json (Qwen3-VL ships temperature 0.7, top-p 0.8, top-k 20 there).
        kwargs: dict[str, Any] = {
            'max_new_tokens': sampling.max_new_tokens, 'eos_token_id': self._eos_ids,
            'pad_token_id': self._pad_id, 'repetition_penalty': 1.0}
        if sampling.temperature > 0:
            kwargs.update(do_sample=True, temperature=sampling.temperature,
                          top_p=sampling.top_p, top_k=sampling.top_k)
        else:
            # transformers' neutral values, so greedy decoding warns about nothing.
            kwargs.update(do_sample=False, temperature=1.0, top_p=1.0, top_k=50)
        if self._options.ignore_eos:
            kwargs['min_new_tokens'] = sampling.max_new_tokens
        if self._static_cache:
            kwargs['cache_implementation'] = 'static'
            kwargs['disable_compile'] = not self._compile
        return kwargs

    def _completion_lengths(self, new_tokens: torch.Tensor) -> list[int]:
        # Tokens up to and including the first end-of-turn; the rest is padding.
        is_end = torch.isin(new_tokens, torch.tensor(self._eos_ids, device=new_tokens.device))
        has_end = is_end.any(dim=1)
        first_end = is_end.int().argmax(dim=1) + 1
        full = torch.full_like(first_end, new_tokens.shape[1])
        return torch.where(has_end, first_end, full).tolist()

    def close(self) -> None:
        """Drop the model and return its GPU memory."""
        self._model = None
        self._processor = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _switch(value: str, auto: bool) -> bool:
    return auto if value == 'auto' else value == 'on'


def _ids(tokenizer: Any, tokens: Sequence[str]) -> list[int]:
    vocab = tokenizer.get_vocab()
    return [vocab[t] for t in tokens if t in vocab]


@contextlib.contextmanager
def _seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Seed torch for one call without disturbing the process-wide generator afterwards."""
    if seed is None:
        yield
        return
    devices = [device.index or 0] if device.type == 'cuda' else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield

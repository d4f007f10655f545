"""Frozen configs of the reward engine and its backends; nodes and the CLI only fill them in.

The reward node declares one ROS parameter per field (``reward.<field>``,
``transformers.<field>``, ``openai.<field>``); ``sole-r1 score`` builds them from flags.
"""
from dataclasses import dataclass, field

_SWITCHES = ('auto', 'on', 'off')
_DEVICES = ('auto', 'cpu', 'cuda')
_DTYPES = ('auto', 'bfloat16', 'float16', 'float32')
_IMAGE_FORMATS = ('png', 'jpeg')


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f'{name} must be one of {choices}, got {value!r}')


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f'{name} must be > 0, got {value}')


@dataclass(frozen=True)
class TransformersConfig:
    """Load-time settings of the local Hugging Face transformers backend."""

    device: str = 'auto'
    ''''cuda', 'cpu', or 'auto' (CUDA when available). 'cuda' may carry an index: 'cuda:1'.'''
    dtype: str = 'auto'
    '''Weights dtype; 'auto' is bfloat16 on CUDA (the checkpoint's dtype) and float32 on CPU.'''
    static_cache: str = 'auto'
    '''Static KV cache ('auto': on for CUDA only). Needed for compiled decoding.'''
    compile: str = 'auto'
    '''torch.compile the decode step with CUDA graphs ('auto': on for CUDA with static cache).'''
    warmup: str = 'auto'
    '''Run generate once per batch bucket at load, so compilation is not paid by the first
    rewards ('auto': on when compiling).'''
    batch_buckets: tuple[int, ...] = (1, 8, 32)
    '''With a static cache a batch is padded up to the next bucket so only these shapes are
    ever compiled; larger batches are split at the largest bucket.'''
    prompt_pad_multiple: int = 64
    '''With a static cache prompts are left-padded to a multiple of this many tokens [tokens],
    which bounds the number of distinct cache shapes.'''
    ignore_eos: bool = False
    '''Always generate max_new_tokens tokens (benchmarks only).'''
    attn_implementation: str = 'sdpa'
    '''Attention kernel passed to transformers ('sdpa', 'eager', 'flash_attention_2').'''

    def __post_init__(self) -> None:
        if not (self.device in _DEVICES or self.device.startswith('cuda:')):
            raise ValueError(f"device must be one of {_DEVICES} or 'cuda:N', got {self.device!r}")
        _check_choice('dtype', self.dtype, _DTYPES)
        for name in ('static_cache', 'compile', 'warmup'):
            _check_choice(name, getattr(self, name), _SWITCHES)
        if not self.batch_buckets or any(b < 1 for b in self.batch_buckets):
            raise ValueError(f'batch_buckets must be positive sizes, got {self.batch_buckets}')
        if self.prompt_pad_multiple < 1:
            raise ValueError(f'prompt_pad_multiple must be >= 1, got {self.prompt_pad_multiple}')


@dataclass(frozen=True)
class OpenAIConfig:
    """Settings of the OpenAI-compatible HTTP backend (vLLM ``serve``, hosted models)."""

    base_url: str = 'http://localhost:8000/v1'
    '''Endpoint root; requests go to ``{base_url}/chat/completions``.'''
    api_key_env: str = 'OPENAI_API_KEY'
    '''Name of the environment variable holding the API key; unset means no auth header.'''
    request_timeout_s: float = 60.0
    '''Timeout of one HTTP request [s].'''
    max_retries: int = 3
    '''Retries after a connection error or a 5xx reply (not after a timeout or a 4xx).'''
    retry_backoff_s: float = 0.5
    '''First retry delay [s]; doubles on each further retry.'''
    image_format: str = 'png'
    ''''png' (lossless: the server sees the exact composite) or 'jpeg' (smaller).'''
    jpeg_quality: int = 90
    '''JPEG quality 1-95 when image_format is 'jpeg'.'''
    health_check_s: float = 10.0
    '''At start, wait at most this long for ``{base_url}/models`` to answer [s]; 0 skips it.'''
    send_top_k: bool = True
    '''Send top_k (vLLM accepts it; the OpenAI API itself rejects it).'''

    def __post_init__(self) -> None:
        if not self.base_url.startswith(('http://', 'https://')):
            raise ValueError(
                f'base_url must start with http:// or https://, got {self.base_url!r}')
        _check_positive('request_timeout_s', self.request_timeout_s)
        if self.max_retries < 0:
            raise ValueError(f'max_retries must be >= 0, got {self.max_retries}')
        if self.retry_backoff_s < 0:
            raise ValueError(f'retry_backoff_s must be >= 0, got {self.retry_backoff_s}')
        _check_choice('image_format', self.image_format, _IMAGE_FORMATS)
        if not 1 <= self.jpeg_quality <= 95:
            raise ValueError(f'jpeg_quality must be in [1, 95], got {self.jpeg_quality}')
        if self.health_check_s < 0:
            raise ValueError(f'health_check_s must be >= 0, got {self.health_check_s}')


@dataclass(frozen=True)
class RewardConfig:
    """How the reward engine asks for progress; defaults are the authors' sampling settings."""

    backend: str = 'transformers'
    '''Backend name registered in ``reward.backends`` ('transformers', 'openai', 'oracle').'''
    model: str = ''
    '''transformers: a local Qwen3-VL checkpoint folder (e.g. SOLE-R1-8B), 'tiny-random' or
    '8b-random'; openai: the served model name. Unused by the oracle.'''
    temperature: float = 1.0
    '''Sampling temperature; 0 decodes greedily (use 0 for evaluation).'''
    top_p: float = 0.9
    top_k: int = 50
    '''0 disables top-k filtering.'''
    max_new_tokens: int = 200
    '''Longest reply [tokens]; the authors' 200 fits the reasoning and the answer.'''
    seed: int | None = None
    '''Seed for sampling, applied before every backend call; None leaves sampling unseeded.'''
    timeout_s: float | None = 120.0
    '''Deadline of one backend call [s]; on expiry the queries carry their previous progress
    with error='timeout'. None waits forever.'''
    max_batch_size: int = 32
    '''Most queries per backend call; larger ``score`` calls are split.'''
    transformers: TransformersConfig = field(default_factory=TransformersConfig)
    openai: OpenAIConfig = field(default_factory=OpenAIConfig)

    def __post_init__(self) -> None:
        if not self.backend:
            raise ValueError('backend must name a registered backend, got an empty string')
        if self.temperature < 0:
            raise ValueError(f'temperature must be >= 0, got {self.temperature}')
        if not 0 < self.top_p <= 1:
            raise ValueError(f'top_p must be in (0, 1], got {self.top_p}')
        if self.top_k < 0:
            raise ValueError(f'top_k must be >= 0, got {self.top_k}')
        if self.max_new_tokens < 1:
            raise ValueError(f'max_new_tokens must be >= 1, got {self.max_new_tokens}')
        if self.seed is not None and self.seed < 0:
            raise ValueError(f'seed must be >= 0 or None, got {self.seed}')
        if self.timeout_s is not None:
            _check_positive('timeout_s', self.timeout_s)
        if self.max_batch_size < 1:
            raise ValueError(f'max_batch_size must be >= 1, got {self.max_batch_size}')

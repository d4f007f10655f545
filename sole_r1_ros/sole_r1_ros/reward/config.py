"""Frozen configs of the reward engine and its backends; nodes and the CLI only fill them in.

Each field carries its help text and limits (``configuration.option``): the reward node declares
one ROS parameter per field (``backend``, ``temperature``, ``transformers.device``,
``openai.base_url``, ...) and ``sole-r1 score``/``eval`` build the same classes from flags, so the
defaults below are the only ones.
"""
from dataclasses import dataclass

from sole_r1_ros.configuration import option, validate

_SWITCHES = ('auto', 'on', 'off')


@dataclass(frozen=True)
class TransformersConfig:
    """Load-time settings of the local Hugging Face transformers backend."""

    device: str = option('auto', "'cuda', 'cpu', or 'auto' (CUDA when available); 'cuda:N' "
                         'picks a GPU', read_only=True)
    dtype: str = option('auto', "weights dtype; 'auto' is bfloat16 on CUDA (the checkpoint's) "
                        'and float32 on CPU', choices=('auto', 'bfloat16', 'float16', 'float32'),
                        read_only=True)
    static_cache: str = option('auto', "static KV cache, needed for compiled decoding ('auto': "
                               'on for CUDA only)', choices=_SWITCHES, read_only=True)
    compile: str = option('auto', "torch.compile the decode step with CUDA graphs ('auto': on "
                          'for CUDA with a static cache)', choices=_SWITCHES, read_only=True)
    warmup: str = option('auto', 'run generate once per batch bucket at load, so the first '
                         "rewards do not pay for compilation ('auto': on when compiling)",
                         choices=_SWITCHES, read_only=True)
    batch_buckets: tuple[int, ...] = option(
        (1, 8, 32), 'with a static cache a batch is padded up to the next bucket so only these '
        'shapes are compiled; larger batches are split at the largest', range=(1, 4096),
        read_only=True)
    prompt_pad_multiple: int = option(
        64, 'with a static cache prompts are left-padded to a multiple of this [tokens], which '
        'bounds the number of cache shapes', range=(1, 4096), read_only=True)
    ignore_eos: bool = option(False, 'always generate max_new_tokens tokens (benchmarks only)',
                              read_only=True)
    attn_implementation: str = option(
        'sdpa', 'attention kernel passed to transformers',
        choices=('sdpa', 'eager', 'flash_attention_2'), read_only=True)

    def __post_init__(self) -> None:
        validate(self)
        if not (self.device in ('auto', 'cpu', 'cuda') or self.device.startswith('cuda:')):
            raise ValueError(f"TransformersConfig.device must be 'auto', 'cpu', 'cuda' or "
                             f"'cuda:N', got {self.device!r}")
        if not self.batch_buckets:
            raise ValueError('TransformersConfig.batch_buckets must name at least one size')


@dataclass(frozen=True)
class OpenAIConfig:
    """Settings of the OpenAI-compatible HTTP backend (vLLM ``serve``, hosted models)."""

    base_url: str = option('http://localhost:8000/v1', 'endpoint root; requests go to '
                           '{base_url}/chat/completions', read_only=True)
    api_key_env: str = option('SOLE_R1_API_KEY', 'name of the environment variable that holds '
                              'the API key (never the key itself); unset means no auth header',
                              read_only=True)
    max_concurrency: int = option(
        64, 'most requests in flight at once, over all backend calls; one vLLM server on one GPU '
        'batches this many SOLE-R1 requests (about 1.2k prompt + 200 new tokens each) in its '
        'KV cache, and queues the rest itself', range=(1, 4096), read_only=True)
    request_timeout_s: float = option(60.0, 'deadline of one request, its retries included '
                                      '[s]; a request that overruns fails alone (the others '
                                      'of the batch are unaffected); at most timeout_s',
                                      range=(0.01, 86400.0), read_only=True)
    max_retries: int = option(3, 'retries of one request after a connection error, an HTTP '
                              '5xx or a 429 (not after a timeout, another 4xx or a malformed '
                              'reply)', range=(0, 100), read_only=True)
    retry_backoff_s: float = option(0.5, 'first retry delay [s]; doubles on each further retry',
                                    range=(0.0, 600.0), read_only=True)
    image_format: str = option('png', "'png' (lossless: the server sees the exact composite) or "
                               "'jpeg' (smaller)", choices=('png', 'jpeg'), read_only=True)
    jpeg_quality: int = option(90, 'JPEG quality when image_format is jpeg', range=(1, 95),
                               read_only=True)
    health_check_s: float = option(600.0, 'at start, wait at most this long for '
                                   '{base_url}/models to answer [s] (vLLM answers once its '
                                   'model is loaded: minutes for 8B); 0 skips the check',
                                   range=(0.0, 3600.0), read_only=True)
    health_retry_s: float = option(
        1.0, 'once the server stops answering, requests fail at once without being sent, and '
        '{base_url}/models is probed again after this delay [s]; it doubles after each failed '
        'probe, up to health_retry_max_s', range=(0.01, 3600.0), read_only=True)
    health_retry_max_s: float = option(30.0, 'longest delay between two probes of a server '
                                       'that does not answer [s]', range=(0.01, 3600.0),
                                       read_only=True)
    health_report_s: float = option(60.0, 'while the server does not answer, log at most one '
                                    'warning per this interval [s]', range=(0.1, 86400.0),
                                    read_only=True)
    send_top_k: bool = option(True, 'send top_k (vLLM accepts it; the OpenAI API rejects it)',
                              read_only=True)

    def __post_init__(self) -> None:
        validate(self)
        if not self.base_url.startswith(('http://', 'https://')):
            raise ValueError(f'OpenAIConfig.base_url must start with http:// or https://, got '
                             f'{self.base_url!r}')
        if self.health_retry_max_s < self.health_retry_s:
            raise ValueError(f'OpenAIConfig.health_retry_max_s ({self.health_retry_max_s}) must '
                             f'be >= health_retry_s ({self.health_retry_s})')


@dataclass(frozen=True)
class RewardConfig:
    """How the reward engine asks for progress; defaults are the authors' sampling settings."""

    backend: str = option('transformers', "'transformers' (a local SOLE-R1 checkpoint), "
                          "'openai' (vllm serve), 'compact' (the CPU model shipped with the "
                          "package) or 'oracle' (simulator truth, evaluation only)",
                          read_only=True)
    model: str = option('', 'transformers: a local Qwen3-VL checkpoint folder (SOLE-R1-8B), '
                        "'tiny-random' or '8b-random'; openai: the served model name; compact: "
                        "a checkpoint file ('' = the shipped one)", read_only=True)
    erased_model: str = option(
        '', "compact only: a checkpoint trained on frames with the robot erased ('shipped': "
        "the package's) to pair with model; the answer joins the two networks' (pair_join), the "
        'erased one reading the external view with the robot erased, which the camera node sends '
        'beside the pictures (camera_node.erase_robot and erased_beside, robot masks '
        "needed); '' = no pair", read_only=True)
    pair_join: str = option(
        'mean', "compact pair only: how its two answers make one. 'mean': their average (the "
        "better offline numbers); 'min': the smaller, so a pose that fools one network earns "
        'nothing unless it fools the other too (sole_r1_ros/data/README.md, "The smaller answer, '
        'as a reward")',
        choices=('mean', 'min'), read_only=True)
    temperature: float = option(1.0, 'sampling temperature (the authors: 1.0); 0 decodes '
                                'greedily, for evaluation', range=(0.0, 10.0), read_only=True)
    top_p: float = option(0.9, 'nucleus sampling mass (the authors: 0.9)', range=(1e-6, 1.0),
                          read_only=True)
    top_k: int = option(50, 'top-k filtering (the authors: 50); 0 disables it',
                        range=(0, 100000), read_only=True)
    max_new_tokens: int = option(200, "longest reply [tokens]; the authors' 200 fits the "
                                 'reasoning and the answer', range=(1, 32768), read_only=True)
    seed: int = option(-1, 'sampling seed applied before every backend call; -1 leaves '
                       'sampling unseeded', range=(-1, 2**31 - 1), read_only=True)
    timeout_s: float = option(120.0, 'deadline of one backend call [s]; on expiry the queries '
                              "carry their previous progress with error 'timeout'",
                              range=(0.01, 86400.0), read_only=True)
    max_batch_size: int = option(32, 'most queries (episodes) per backend call; larger calls '
                                 'are split', range=(1, 4096), read_only=True)
    concurrent_calls: int = option(
        0, 'most backend calls in flight at once; 0 takes what the backend allows (openai: '
        'openai.max_concurrency, so the reward node sends each episode its own call and an '
        'answer never waits for another episode; transformers, compact, oracle: 1, one batch '
        'at a time)', range=(0, 4096), read_only=True)
    transformers: TransformersConfig = option(default_factory=TransformersConfig,
                                              help='local transformers backend')
    openai: OpenAIConfig = option(default_factory=OpenAIConfig,
                                  help='OpenAI-compatible HTTP backend')

    def __post_init__(self) -> None:
        validate(self)
        if not self.backend:
            raise ValueError('RewardConfig.backend must name a registered backend, got an '
                             'empty string')
        if self.erased_model and self.backend != 'compact':
            raise ValueError(f'RewardConfig.erased_model pairs compact checkpoints; the '
                             f'{self.backend!r} backend has none (leave it empty)')
        if self.pair_join != 'mean' and not self.erased_model:
            raise ValueError(f'RewardConfig.pair_join {self.pair_join!r} joins the answers of '
                             'a compact pair, and erased_model is not set')

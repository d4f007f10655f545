"""OpenAI-compatible chat endpoint backend: vLLM ``serve`` of SOLE-R1, or a hosted model.

The composite goes inline as a base64 data URL (PNG by default, so the server sees exactly our
pixels); the server applies the model's own chat template and image processor. Requests are sent
one after another: the backend starts no thread, and a vLLM server batches whatever arrives.
"""
import base64
import io
import logging
import os
import time
from typing import Any, Sequence

from sole_r1_ros.reward import protocol
from sole_r1_ros.reward.backends.base import BackendError, PreparedRequest, RawReply
from sole_r1_ros.reward.config import OpenAIConfig, RewardConfig

try:
    import requests as http
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("the openai reward backend needs requests: pip install 'sole_r1_ros[model]'"
                      ) from exc

logger = logging.getLogger(__name__)


def image_data_url(image: Any, image_format: str = 'png', jpeg_quality: int = 90) -> str:
    """Encode a PIL image as a ``data:image/...;base64,`` URL."""
    buffer = io.BytesIO()
    if image_format == 'png':
        image.save(buffer, format='PNG')
    else:
        image.convert('RGB').save(buffer, format='JPEG', quality=jpeg_quality)
    encoded = base64.b64encode(buffer.getvalue()).decode('ascii')
    return f'data:image/{image_format};base64,{encoded}'


class OpenAIBackend:
    """POST each request to ``{base_url}/chat/completions`` with timeouts and bounded retries."""

    def __init__(self, model: str, options: OpenAIConfig = OpenAIConfig(),
                 api_key: str | None = None) -> None:
        if not model:
            raise ValueError('model must name the served model (e.g. the path vLLM serves), '
                             "got ''")
        self.model_id = model
        self._options = options
        self._url = options.base_url.rstrip('/') + '/chat/completions'
        self._session = http.Session()
        if api_key:
            self._session.headers['Authorization'] = f'Bearer {api_key}'
        if options.health_check_s > 0:
            self.check_server(options.health_check_s)

    @classmethod
    def from_config(cls, config: RewardConfig) -> 'OpenAIBackend':
        """Build from ``config.openai``; the API key is read from ``api_key_env`` here, once."""
        api_key = os.environ.get(config.openai.api_key_env) if config.openai.api_key_env else None
        return cls(config.model, config.openai, api_key)

    def check_server(self, deadline_s: float) -> None:
        """Wait until ``{base_url}/models`` answers at all, for at most ``deadline_s``.

        Raises:
            BackendError: no HTTP answer before the deadline (chained to the last error).
        """
        url = self._options.base_url.rstrip('/') + '/models'
        deadline = time.monotonic() + deadline_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                # Any HTTP status means a server is listening; only 5xx means not ready.
                response = self._session.get(url, timeout=max(0.1, min(5.0, remaining)))
                if response.status_code < 500:
                    return
                last: Exception = BackendError(f'HTTP {response.status_code}')
            except http.RequestException as exc:
                last = exc
            if time.monotonic() + 0.2 >= deadline:
                raise BackendError(f'no reply from {url} within {deadline_s:.1f} s') from last
            time.sleep(0.2)

    def generate(self, requests: Sequence[PreparedRequest]) -> list[RawReply]:
        """Send the requests one after another; the first failure raises ``BackendError``."""
        return [self._complete(request) for request in requests]

    def _payload(self, request: PreparedRequest) -> dict[str, Any]:
        system, user = protocol.message_texts(request.messages)
        url = image_data_url(request.image, self._options.image_format,
                             self._options.jpeg_quality)
        sampling = request.sampling
        payload: dict[str, Any] = {
            'model': self.model_id,
            'messages': [
                {'role': 'system', 'content': system},
                {'role': 'user', 'content': [{'type': 'image_url', 'image_url': {'url': url}},
                                             {'type': 'text', 'text': user}]},
            ],
            'temperature': sampling.temperature,
            'top_p': sampling.top_p if sampling.temperature > 0 else 1.0,
            'max_tokens': sampling.max_new_tokens,
        }
        if self._options.send_top_k and sampling.temperature > 0:
            payload['top_k'] = sampling.top_k if sampling.top_k > 0 else -1  # vLLM: -1 = off
        if sampling.seed is not None:
            payload['seed'] = sampling.seed
        return payload

    def _complete(self, request: PreparedRequest) -> RawReply:
        payload = self._payload(request)
        start = time.perf_counter()
        response = self._post(payload)
        try:
            body = response.json()
            text = body['choices'][0]['message']['content'] or ''
            tokens = (body.get('usage') or {}).get('completion_tokens')
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise BackendError(f'malformed chat-completion reply from {self._url}: '
                               f'{response.text[:200]!r}') from exc
        return RawReply(text, time.perf_counter() - start, tokens)

    def _post(self, payload: dict[str, Any]) -> 'http.Response':
        options = self._options
        attempt = 0
        while True:
            try:
                response = self._session.post(self._url, json=payload,
                                              timeout=options.request_timeout_s)
            except http.ConnectionError as exc:  # also ConnectTimeout: nothing was sent
                retry_reason: Exception = exc
            except http.Timeout as exc:
                # The server has the request and is slow; a retry would only double the wait.
                raise BackendError(f'{self._url} timed out after '
                                   f'{options.request_timeout_s} s') from exc
            except http.RequestException as exc:
                raise BackendError(f'request to {self._url} failed: {exc}') from exc
            else:
                if response.status_code < 400:
                    return response
                retry_reason = BackendError(f'{self._url} answered HTTP {response.status_code}: '
                                            f'{response.text[:200]!r}')
                if response.status_code < 500:
                    raise retry_reason
            if attempt == options.max_retries:
                raise BackendError(f'{self._url} failed after {attempt + 1} attempts: '
                                   f'{retry_reason}') from retry_reason
            delay_s = options.retry_backoff_s * 2 ** attempt
            logger.warning('%s: %s; retry %d/%d in %.2f s', self._url, retry_reason,
                           attempt + 1, options.max_retries, delay_s)
            time.sleep(delay_s)
            attempt += 1

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._session.close()

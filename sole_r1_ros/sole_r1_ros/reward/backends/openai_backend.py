"""OpenAI-compatible chat endpoint backend: vLLM ``serve`` of SOLE-R1, or a hosted model.

A batch's requests go out concurrently over one keep-alive connection pool (httpx2's
``AsyncClient``, the transport of the ``openai`` SDK) on an event loop that runs on a thread of
its own; ``generate`` stays synchronous and returns the replies in request order, so a vLLM
server sees a whole batch at once and batches it. ``generate`` may be called from several
threads at once (the reward node keeps one call per episode in flight): all calls share the
loop, the pool and the bound of ``max_concurrency`` requests in flight. Each request has its
own deadline, retries and outcome: a timeout, an HTTP error or a malformed reply becomes that
reply's ``error`` and never touches the others. When the server does not answer at all,
requests fail at once and the server is probed with backoff (``health``).

The composite goes inline as a base64 data URL (PNG by default, so the server sees exactly our
pixels); the server applies the model's own chat template and image processor.
"""
import asyncio
import base64
import concurrent.futures
import dataclasses
import datetime
import email.utils
import io
import json
import logging
import math
import os
import threading
import time
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit
import uuid

from sole_r1_ros.reward import protocol
from sole_r1_ros.reward.backends.base import BackendError, PreparedRequest, RawReply
from sole_r1_ros.reward.backends.health import ServerHealth
from sole_r1_ros.reward.config import OpenAIConfig, RewardConfig

try:
    import cv2
    import httpx2 as httpx
    import numpy as np
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(f'the openai reward backend needs {exc.name}: pip install '
                      "'sole_r1_ros[model]'") from exc

logger = logging.getLogger(__name__)

# Lossless PNG at zlib level 1 with the 'sub' row filter: on camera frames (JPEG-tiled, noisy)
# that costs half of PIL's level 1 and a fifth of its default (6), for about 10 % more bytes.
# On a small host the encoding is most of the client's work per request.
_PNG_PARAMS = (cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB)
_PROBE_TIMEOUT_S = 5.0
# While the first check waits for a server (vLLM loading an 8B model takes minutes), say so
# this often.
_WAIT_REPORT_S = 15.0
# Connecting takes milliseconds on a LAN: a host that is off shows as a connect timeout (and a
# retry) long before the request's deadline, which otherwise hid it as a slow answer.
_CONNECT_TIMEOUT_S = 5.0
# Requests in a row that reached their deadline: a server this hung is marked down and probed.
_TIMEOUTS_DOWN = 2
# Failed requests are logged at most this often, with how many failed since: one line per
# request had filled the log at tens of lines a second with 64 episodes on a failing server.
_FAILURE_REPORT_S = 10.0
# Transient for a retry: the server is restarting, overloaded, or rate-limits us.
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_NOT_SENT = 'not sent: '
# Stands for the image in the JSON text until the encoded image replaces it (see ``_body``).
_IMAGE_SLOT = f'image-{uuid.uuid4().hex}'


def image_data_url(image: Any, image_format: str = 'png', jpeg_quality: int = 90) -> bytes:
    """Encode a PIL RGB image as a ``data:image/...;base64,`` URL, in ASCII bytes.

    PNG keeps the exact pixels; JPEG is smaller.
    """
    if image_format == 'png':
        # One copy, in Pillow's C code, straight into OpenCV's channel order.
        bgr = np.frombuffer(image.convert('RGB').tobytes('raw', 'BGR'), np.uint8).reshape(
            image.height, image.width, 3)
        ok, data = cv2.imencode('.png', bgr, _PNG_PARAMS)
        if not ok:
            raise ValueError(f'could not encode a {image.size} image as PNG')
        data = data.tobytes()
    else:
        buffer = io.BytesIO()
        image.convert('RGB').save(buffer, format='JPEG', quality=jpeg_quality)
        data = buffer.getvalue()
    return f'data:image/{image_format};base64,'.encode('ascii') + base64.b64encode(data)


def redact_url(url: str) -> str:
    """``url`` without a ``user:password@`` part, for messages."""
    parts = urlsplit(url)
    if '@' not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc='***@' + parts.netloc.rsplit('@', 1)[1]))


_ALL_ASKED = -1   # _parse: cut off at max_tokens, the count not sent


class OpenAIBackend:
    """POST each request to ``{base_url}/chat/completions``, many at once, each on its own.

    Thread-safe: several threads may be inside ``generate`` at once; more than
    ``concurrent_calls`` (``max_concurrency``) of them only queue for a request slot.
    """

    cancels_on_close = True
    '''``close`` fails the calls still running at once (the engine closes it first).'''
    batches = False
    '''A call's queries go out as requests of their own: one call of many, with one deadline
    for all, would time out every query behind a slow server (``max_concurrency`` 1).'''

    def __init__(self, model: str, options: OpenAIConfig = OpenAIConfig(),
                 api_key: str | None = None) -> None:
        if not model:
            raise ValueError('model must name the served model (e.g. the path vLLM serves), '
                             "got ''")
        self.model_id = model
        self._options = options
        root = options.base_url.rstrip('/')
        self._url = root + '/chat/completions'
        self._models_url = root + '/models'
        self._name = redact_url(root)
        self._root = root                 # only for redaction: a user:password in it
        self._api_key = api_key or None   # only for redaction; the client sends it
        self._timeouts_in_row = 0         # on the event loop only
        self._answered_at = -math.inf     # the event loop's time of the last answer
        self._health = ServerHealth(self._name, options.health_retry_s,
                                    options.health_retry_max_s, options.health_report_s)
        # Calls overlap as far as their requests may (the node keeps one call per episode).
        self.concurrent_calls = options.max_concurrency
        self._slots = asyncio.Semaphore(options.max_concurrency)   # shared by all calls
        self._probing = False
        self._lock = threading.Lock()     # closing against scheduling
        self._closed = False
        self._failures_unsaid = 0         # under _lock: failed requests since the last report
        self._failure_said_s = -math.inf
        limits = httpx.Limits(max_connections=options.max_concurrency,
                              max_keepalive_connections=options.max_concurrency)
        headers = {'Authorization': f'Bearer {api_key}'} if api_key else {}
        timeout = httpx.Timeout(options.request_timeout_s,
                                connect=min(_CONNECT_TIMEOUT_S, options.request_timeout_s))
        self._client = httpx.AsyncClient(limits=limits, headers=headers, timeout=timeout)
        self._loop = asyncio.new_event_loop()
        # Daemon: a request stuck in the network cannot keep the interpreter alive.
        self._thread = threading.Thread(target=self._loop.run_forever, name='reward-openai',
                                        daemon=True)
        self._thread.start()
        if options.health_check_s > 0:
            try:
                self.check_server(options.health_check_s)
            except BackendError:
                self.close()
                raise

    @classmethod
    def from_config(cls, config: RewardConfig) -> 'OpenAIBackend':
        """Build from ``config.openai``; the API key is read from ``api_key_env`` here, once."""
        api_key = os.environ.get(config.openai.api_key_env) if config.openai.api_key_env else None
        # A request never outlives its call: past the call's deadline the episode's next query
        # would go out while this one is still at the server. Its deadline counts from when it
        # is made (the call's a little earlier), so it ends a tenth before the call's.
        options = dataclasses.replace(config.openai, request_timeout_s=min(
            config.openai.request_timeout_s, 0.9 * config.timeout_s))
        return cls(config.model, options, api_key)

    def __repr__(self) -> str:
        return (f'OpenAIBackend(model={self.model_id!r}, base_url={self._name!r}, '
                f'auth={self._api_key is not None})')

    def check_server(self, deadline_s: float) -> None:
        """Wait until ``{base_url}/models`` answers, for at most ``deadline_s``; check it.

        Raises:
            BackendError: no HTTP answer before the deadline (chained to the last error), the
                API key refused, no ``/models`` there, or a model list without ``model``.
        """
        self._run(self._wait_for_server(deadline_s))

    def generate(self, requests: Sequence[PreparedRequest]) -> list[RawReply]:
        """Send the requests concurrently; a failed one is its reply's ``error``, in order.

        Raises:
            BackendError: the backend is closed.
        """
        if not requests:
            return []
        replies = self._run(self._generate(list(requests)))
        # Requests refused while the server is down are reported by ``_health``, throttled.
        failed = [(r, reply) for r, reply in zip(requests, replies)
                  if reply.error and not reply.error.startswith(_NOT_SENT)]
        if failed:
            with self._lock:
                self._failures_unsaid += len(failed)
                now = time.monotonic()
                say = now - self._failure_said_s >= _FAILURE_REPORT_S
                if say:
                    count, self._failures_unsaid, self._failure_said_s = (
                        self._failures_unsaid, 0, now)
            if say:
                episodes = [r.metadata.get('episode_id') for r, _ in failed]
                logger.warning('%d of %d requests to %s failed (episodes %s); first: %s%s',
                               len(failed), len(requests), self._name, episodes,
                               failed[0][1].error,
                               f' ({count} failed since the last report, '
                               f'{_FAILURE_REPORT_S:.0f} s at most apart)'
                               if count > len(failed) else '')
        return replies

    def close(self) -> None:
        """Close the connection pool and stop the event loop.

        Calls still running fail with ``BackendError`` (closed).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            shutdown = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        try:
            shutdown.result()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    # -- on the event loop ----------------------------------------------------------------------
    def _run(self, coroutine: Any) -> Any:
        """Run ``coroutine`` on the loop thread and wait for it (from any thread)."""
        with self._lock:
            if self._closed:
                coroutine.close()
                raise BackendError(f'the backend for {self._name} is closed')
            future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result()
        except concurrent.futures.CancelledError as exc:   # close() cancelled it
            raise BackendError(f'the backend for {self._name} was closed') from exc

    async def _shutdown(self) -> None:
        running = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await self._client.aclose()
        await self._loop.shutdown_default_executor()

    async def _generate(self, requests: list[PreparedRequest]) -> list[RawReply]:
        if self._health.probe_due() and not self._probing:   # one probe for all calls
            self._probing = True
            try:
                await self._probe()
            finally:
                self._probing = False
        return list(await asyncio.gather(*(self._complete(r) for r in requests)))

    async def _complete(self, request: PreparedRequest) -> RawReply:
        start = time.perf_counter()
        try:
            text, tokens = await self._send(request)
        except (BackendError, TimeoutError, asyncio.TimeoutError) as exc:
            return RawReply('', time.perf_counter() - start, error=self._redact(str(exc)))
        except Exception as exc:  # a request that cannot even be built fails alone
            return RawReply('', time.perf_counter() - start,
                            error=self._redact(f'request not built: {type(exc).__name__}: {exc}'))
        if tokens == _ALL_ASKED:   # finish_reason 'length': it generated all it was allowed
            tokens = request.sampling.max_new_tokens
        return RawReply(text, time.perf_counter() - start, tokens)

    async def _send(self, request: PreparedRequest) -> tuple[str, int | None]:
        if self._health.is_down:
            raise BackendError(_NOT_SENT + self._health.refuse())
        # One deadline from here: building the body and waiting for a slot count too, or a
        # request queued behind a slow server outlived its call.
        timeout_s = self._options.request_timeout_s
        deadline = asyncio.get_running_loop().time() + timeout_s
        # The composite and its encoding are CPU work (PIL and cv2 release the GIL): a worker
        # thread keeps the loop sending and receiving meanwhile.
        body = await asyncio.to_thread(self._body, request)
        async with self._slots:
            if self._health.is_down:   # an earlier request found it dead
                raise BackendError(_NOT_SENT + self._health.refuse())
            try:
                reply = await asyncio.wait_for(
                    self._post(body, deadline),
                    max(0.0, deadline - asyncio.get_running_loop().time()))
            except (TimeoutError, asyncio.TimeoutError) as exc:   # the same class from 3.11
                self._timeouts_in_row += 1
                now = asyncio.get_running_loop().time()
                # hung, or a host that is off: and not a live server's slow tail, two of whose
                # many requests in flight timed out together while the others were answered
                if (self._timeouts_in_row >= _TIMEOUTS_DOWN
                        and now - self._answered_at >= timeout_s):
                    self._health.mark_down(f'{self._timeouts_in_row} requests in a row timed '
                                           f'out after {timeout_s} s')
                raise TimeoutError(f'{self._name}/chat/completions timed out after '
                                   f'{timeout_s} s') from exc
            self._timeouts_in_row = 0
            self._answered_at = asyncio.get_running_loop().time()
            return reply

    async def _post(self, body: bytes, deadline: float = float('inf')) -> tuple[str, int | None]:
        """One request with its retries; raises ``BackendError`` or ``TimeoutError``.

        No retry is begun that would wait past ``deadline`` (the event loop's time): the
        failure is then said as it is (a refused connection), not as a timeout.
        """
        options = self._options
        reason, connect_failed, made, asked_s = '', False, 0, 0.0
        for attempt in range(options.max_retries + 1):
            if attempt:
                # a rate limit's Retry-After is the server's: a retry sooner is refused again
                delay_s = max(options.retry_backoff_s * 2 ** (attempt - 1), asked_s)
                if asyncio.get_running_loop().time() + delay_s >= deadline:
                    break
                logger.debug('%s: %s; retry %d/%d in %.2f s', self._name, reason, attempt,
                             options.max_retries, delay_s)
                await asyncio.sleep(delay_s)
            made += 1
            try:
                response = await self._client.post(
                    self._url, content=body, headers={'Content-Type': 'application/json'})
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # nothing was sent
                reason, connect_failed = _describe(exc), True
                continue
            except httpx.TimeoutException as exc:
                # The server has the request and is slow; a retry would only double the wait.
                raise TimeoutError(self._redact(str(exc))) from exc
            except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:  # dropped connection
                reason, connect_failed = _describe(exc), False
                continue
            except httpx.HTTPError as exc:
                raise BackendError(self._redact(f'request to {self._url} failed: '
                                                f'{_describe(exc)}')) from exc
            self._health.mark_up()
            if response.status_code < 400:
                return self._parse(response)
            reason = self._redact(f'HTTP {response.status_code}: {response.text[:200]!r}')
            connect_failed = False
            asked_s = _retry_after_s(response.headers.get('retry-after'))
            if asked_s:
                reason += f' (retry after {math.ceil(asked_s)} s, the server says)'
            if response.status_code not in _RETRY_STATUS:
                raise BackendError(self._redact(f'{self._url} answered {reason}'))
        if connect_failed:
            self._health.mark_down(reason)
        raise BackendError(self._redact(
            f'{self._url} failed after {made} attempt{"s" * (made > 1)}: {reason}'))

    def _parse(self, response: 'httpx.Response') -> tuple[str, int | None]:
        try:
            body = response.json()
            choice = body['choices'][0]
            text = choice['message']['content'] or ''
            # vLLM's --reasoning-parser field: reasoning_content, renamed reasoning later
            thought = (choice['message'].get('reasoning_content')
                       or choice['message'].get('reasoning'))
            tokens = (body.get('usage') or {}).get('completion_tokens')
            if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
                tokens = None   # a count of another type had failed the engine's check
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise BackendError(self._redact(f'malformed chat-completion reply from '
                                            f'{self._url}: {response.text[:200]!r}')) from exc
        if not isinstance(text, str):
            raise BackendError(self._redact(f'malformed chat-completion reply from {self._url}: '
                                            f'content is {type(text).__name__}, not text'))
        if isinstance(thought, str) and thought and '<think>' not in text:
            # vLLM's --reasoning-parser moves the reasoning out of the content: put it back,
            # or ProgressReward.reasoning was empty. A reply whose </think> never came is all
            # "reasoning", its answer too: left unclosed, the parser reads that answer.
            closing = '</think>' if '<answer>' in text or '<answer>' not in thought else ''
            text = f'<think>{thought}{closing}{text}'
        if tokens is None and choice.get('finish_reason') == 'length':
            tokens = _ALL_ASKED   # cut off at max_tokens, though no usage was sent
        return text, tokens

    async def _probe(self) -> None:
        try:
            response = await self._client.get(
                self._models_url, timeout=min(_PROBE_TIMEOUT_S, self._options.request_timeout_s))
        except httpx.HTTPError as exc:
            self._health.probe_failed(_describe(exc))
            return
        if response.status_code < 500:   # any HTTP answer but 5xx: a server is listening
            self._health.mark_up()
        else:
            self._health.probe_failed(f'HTTP {response.status_code}')

    async def _wait_for_server(self, deadline_s: float) -> None:
        start = time.monotonic()
        deadline, report = start + deadline_s, start + _WAIT_REPORT_S
        while True:
            remaining = deadline - time.monotonic()
            try:
                response = await self._client.get(
                    self._models_url, timeout=max(0.1, min(_PROBE_TIMEOUT_S, remaining)))
                if response.status_code < 500:
                    self._check_models(response)
                    return
                last: Exception = BackendError(f'HTTP {response.status_code}')
            except httpx.HTTPError as exc:
                last = BackendError(self._redact(_describe(exc)))
            now = time.monotonic()
            if now + 0.2 >= deadline:
                raise BackendError(f'no reply from {self._name}/models within {deadline_s:.1f} '
                                   f's ({last}): is the server up? (openai.health_check_s, '
                                   'or --wait-for-server, is how long this waits)') from last
            if now >= report:
                report = now + _WAIT_REPORT_S
                logger.warning('waiting for %s/models (%.0f of %.0f s): %s; a vLLM server '
                               'answers once its model is loaded', self._name, now - start,
                               deadline_s, last)
            await asyncio.sleep(0.2)

    def _check_models(self, response: 'httpx.Response') -> None:
        """Refuse, at start, what would make every request fail: key, path or model name."""
        where = f'{self._name}/models'
        if response.status_code in (401, 403):
            raise BackendError(f'{where} refused the API key (HTTP {response.status_code}): set '
                               'openai.api_key_env to the variable that holds the key the '
                               'server expects (vLLM: --api-key)')
        if response.status_code >= 400:
            raise BackendError(f'{where} answered HTTP {response.status_code}: is base_url the '
                               "server's OpenAI root, e.g. http://host:8000/v1?")
        try:
            served = [entry['id'] for entry in response.json()['data']]
        except (ValueError, KeyError, TypeError):
            return   # a server that lists its models otherwise: its answers will tell
        if served and self.model_id not in served:
            raise BackendError(f'{where} serves {served}, not {self.model_id!r}: set model to '
                               'the name the server serves (vLLM: --served-model-name)')

    # -- off the event loop ---------------------------------------------------------------------
    def _body(self, request: PreparedRequest) -> bytes:
        """The JSON body of one request (runs on a worker thread).

        The encoded image is spliced into the JSON text as bytes: base64 needs no escaping,
        and passing the megabyte of it through ``json.dumps`` and ``str.encode`` held the GIL
        for 10 ms per request, which the reward node's other threads then waited for.
        """
        system, user = protocol.message_texts(request.messages)
        url = image_data_url(request.image, self._options.image_format,
                             self._options.jpeg_quality)
        sampling = request.sampling
        payload: dict[str, Any] = {
            'model': self.model_id,
            'messages': [
                {'role': 'system', 'content': system},
                {'role': 'user', 'content': [
                    {'type': 'image_url', 'image_url': {'url': _IMAGE_SLOT}},
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
        head, tail = json.dumps(payload).encode('utf-8').split(_IMAGE_SLOT.encode('ascii'), 1)
        return b''.join((head, url, tail))

    def _redact(self, text: str) -> str:
        """No key or ``user:password`` of base_url in a message or the log.

        A server may echo what it got, and errors name the URL.
        """
        if self._name != self._root:
            text = text.replace(self._root, self._name)
        return text.replace(self._api_key, '***') if self._api_key else text


def _retry_after_s(value: str | None) -> float:
    """A ``Retry-After`` header's wait in seconds (delta seconds or an HTTP date); 0 if none."""
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds())


def _describe(exc: Exception) -> str:
    return f'{type(exc).__name__}: {exc}' if str(exc) else type(exc).__name__

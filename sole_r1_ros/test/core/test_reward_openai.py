"""OpenAI-compatible backend against a real local HTTP server (canned, flaky and hanging)."""
import base64
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import io
import json
import socket
import threading
import time

import numpy as np
import pytest

requests = pytest.importorskip('requests')

from sole_r1_ros.reward import (  # noqa: E402 - after the optional-dependency skip
    BackendError, make_backend, OpenAIConfig, ProgressQuery, protocol, RewardConfig,
    RewardEngine)

_REPLY = '<think>The drawer is mostly shut.</think><answer>73%</answer>'


def _completion(text=_REPLY):
    return {'id': 'cmpl-1', 'object': 'chat.completion', 'model': 'sole-r1',
            'choices': [{'index': 0, 'finish_reason': 'stop',
                         'message': {'role': 'assistant', 'content': text}}],
            'usage': {'prompt_tokens': 1100, 'completion_tokens': 9, 'total_tokens': 1109}}


class _Server:
    """A chat-completions server on a free localhost port; ``script`` decides each reply."""

    def __init__(self, script):
        self.posts = []
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self._send(200, {'object': 'list', 'data': [{'id': 'sole-r1'}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
                server.posts.append((self.path, dict(self.headers), body))
                status, reply = script(len(server.posts), server)
                self._send(status, reply)

            def _send(self, status, reply):
                data = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}/v1'
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(script):
        servers.append(_Server(script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _config(url, **openai):
    options = {'base_url': url, 'health_check_s': 2.0, 'retry_backoff_s': 0.01,
               'request_timeout_s': 5.0, **openai}
    return RewardConfig(backend='openai', model='sole-r1', temperature=0.0, seed=5,
                        max_new_tokens=77, openai=OpenAIConfig(**options))


def _query(previous=10):
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(6)]
    return ProgressQuery('ep0', 3, 'Close the drawer', *frames, previous_progress=previous)


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_reply_is_parsed_and_request_carries_exact_image_prompt_and_key(serve, monkeypatch):
    server = serve(lambda n, s: (200, _completion()))
    monkeypatch.setenv('SOLE_R1_TEST_KEY', 'sekrit')
    config = _config(server.url, api_key_env='SOLE_R1_TEST_KEY')
    engine = RewardEngine(make_backend(config), config)
    query = _query(previous=10)
    [result] = engine.score([query])
    assert (result.progress, result.valid, result.error) == (73, True, None)
    assert result.reasoning == 'The drawer is mostly shut.' and result.model_id == 'sole-r1'
    [(path, headers, body)] = server.posts
    assert path == '/v1/chat/completions' and headers['Authorization'] == 'Bearer sekrit'
    assert (body['model'], body['temperature'], body['max_tokens'], body['seed']) == \
        ('sole-r1', 0.0, 77, 5)
    system, user = body['messages'][0], body['messages'][1]
    assert system == {'role': 'system', 'content': protocol.SYSTEM_PROMPT_TEMPLATE}
    image_part, text_part = user['content']
    assert text_part['text'] == protocol.build_user_prompt('Close the drawer', 10)
    prefix, encoded = image_part['image_url']['url'].split(',', 1)
    assert prefix == 'data:image/png;base64'
    from PIL import Image
    sent = np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))))
    [request] = engine.prepare([query])
    assert np.array_equal(sent, np.asarray(request.image))
    engine.close()


def test_server_error_is_retried_with_backoff_then_succeeds(serve):
    server = serve(lambda n, s: (500, {'error': 'warming up'}) if n == 1 else
                   (200, _completion()))
    backend = make_backend(_config(server.url))
    [request] = RewardEngine(backend, _config(server.url)).prepare([_query()])
    [reply] = backend.generate([request])
    assert reply.text == _REPLY and reply.completion_tokens == 9
    assert len(server.posts) == 2


def test_persistent_server_error_raises_chained_backend_error(serve):
    server = serve(lambda n, s: (503, {'error': 'overloaded'}))
    config = _config(server.url, max_retries=2)
    backend = make_backend(config)
    [request] = RewardEngine(backend, config).prepare([_query()])
    with pytest.raises(BackendError, match='after 3 attempts') as info:
        backend.generate([request])
    assert isinstance(info.value.__cause__, BackendError)
    assert len(server.posts) == 3


def test_client_error_is_not_retried(serve):
    server = serve(lambda n, s: (400, {'error': 'bad request'}))
    config = _config(server.url)
    backend = make_backend(config)
    [request] = RewardEngine(backend, config).prepare([_query()])
    with pytest.raises(BackendError, match='HTTP 400'):
        backend.generate([request])
    assert len(server.posts) == 1


def test_hanging_server_times_out_and_engine_carries_forward(serve):
    def hang(n, server):
        server.release.wait(10.0)
        return 200, _completion()

    server = serve(hang)
    config = _config(server.url, request_timeout_s=0.3)
    engine = RewardEngine(make_backend(config), config)
    start = time.perf_counter()
    [result] = engine.score([_query(previous=44)])
    assert time.perf_counter() - start < 3.0
    assert (result.progress, result.valid) == (44, False)
    assert 'timed out after 0.3 s' in result.error
    assert len(server.posts) == 1  # a read timeout is not retried


def test_connection_refused_is_retried_then_raises_chained_error():
    config = _config(f'http://127.0.0.1:{_free_port()}/v1', health_check_s=0.0, max_retries=2)
    backend = make_backend(config)
    [request] = RewardEngine(backend, config).prepare([_query()])
    with pytest.raises(BackendError, match='after 3 attempts') as info:
        backend.generate([request])
    assert isinstance(info.value.__cause__, requests.ConnectionError)


def test_health_check_gives_up_at_its_deadline():
    config = _config(f'http://127.0.0.1:{_free_port()}/v1', health_check_s=0.5)
    start = time.perf_counter()
    with pytest.raises(BackendError, match='no reply') as info:
        make_backend(config)
    assert time.perf_counter() - start < 3.0
    assert info.value.__cause__ is not None


def test_malformed_reply_is_a_backend_error(serve):
    server = serve(lambda n, s: (200, b'<html>not json</html>'))
    config = _config(server.url)
    [result] = RewardEngine(make_backend(config), config).score([_query(previous=3)])
    assert (result.progress, result.valid) == (3, False)
    assert 'malformed chat-completion reply' in result.error


def test_jpeg_images_and_sampling_settings(serve):
    server = serve(lambda n, s: (200, _completion()))
    config = RewardConfig(backend='openai', model='sole-r1', temperature=1.0, top_p=0.9,
                          top_k=50, openai=OpenAIConfig(base_url=server.url, image_format='jpeg',
                                                        health_check_s=1.0))
    RewardEngine(make_backend(config), config).score([_query()])
    body = server.posts[0][2]
    assert body['messages'][1]['content'][0]['image_url']['url'].startswith(
        'data:image/jpeg;base64,')
    assert (body['temperature'], body['top_p'], body['top_k'], body['max_tokens']) == \
        (1.0, 0.9, 50, 200)
    assert 'seed' not in body

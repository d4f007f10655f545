"""A keep-alive OpenAI-compatible chat server on localhost, for the openai backend's tests."""
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import json
import sys
import threading

REPLY = '<think>The drawer is mostly shut.</think><answer>73%</answer>'


class _QuietServer(ThreadingHTTPServer):
    """A client that went away (a timeout test) is expected, not a traceback on stderr."""

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def completion(text: str = REPLY) -> dict:
    """A chat-completion body whose answer is ``text``."""
    return {'id': 'cmpl-1', 'object': 'chat.completion', 'model': 'sole-r1',
            'choices': [{'index': 0, 'finish_reason': 'stop',
                         'message': {'role': 'assistant', 'content': text}}],
            'usage': {'prompt_tokens': 1100, 'completion_tokens': 9, 'total_tokens': 1109}}


class ChatServer:
    """A keep-alive chat-completions server on localhost.

    ``script(n, server, body, headers) -> (status, reply[, reply_headers])`` decides the n-th
    POST's reply; the server records every POST, the client ports it saw and the most POSTs in
    flight at once.
    """

    def __init__(self, script, port=0):
        self.posts = []
        self.ports = set()
        self.in_flight = self.max_in_flight = 0
        self.release = threading.Event()
        self.models = (200, {'object': 'list', 'data': [{'id': 'sole-r1'}]})   # GET /models
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'   # keep-alive, like vLLM's uvicorn

            def log_message(self, *args):
                pass

            def do_GET(self):
                self._send(*server.models)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
                with server.lock:
                    server.posts.append((self.path, dict(self.headers), body))
                    server.ports.add(self.client_address[1])
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    count = len(server.posts)
                try:
                    status, reply, *headers = script(count, server, body, dict(self.headers))
                finally:
                    with server.lock:
                        server.in_flight -= 1
                self._send(status, reply, *headers)

            def _send(self, status, reply, headers=None):
                data = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        self.httpd = _QuietServer(('127.0.0.1', port), Handler)
        self.httpd.daemon_threads = True
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}/v1'
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

"""Reward serving for many episodes: rewards/s and latency through RewardEngine and reward_node.

The ``openai`` backend talks to a local OpenAI-compatible server (a child process) that behaves
like a continuous-batching engine such as vLLM: all requests in flight decode in lockstep, one
token per step, a step takes ``step_s * (1 + step_growth * (n - 1))`` with n requests in flight,
and a request's latency is ``prefill_s`` plus its tokens' steps. It stands in for the external
server, not for our code: what is measured is how close our client side (composite, PNG, HTTP,
engine, node) gets to that server's ideal throughput ``n / (prefill_s + tokens * step(n))``.

Defaults are the H100 numbers of docs/SOLE_R1_PROTOCOL.md: a decode step at the memory-bandwidth
limit of an 8B bf16 model, 6 ms at 1 in flight, growing to 16 ms at 32 (about 10 rewards/s), 200
new tokens, and 80 ms prefill per request (the static-cache run's 1.8-3.6 s for 32 prompts).

Each level keeps N episodes in flight, closed loop: an episode asks its next query when its
previous answer arrives (its prompt quotes that answer). Three paths:

- ``engine``: one ``RewardEngine.score`` call per round for all N (a round waits for its slowest
  answer, and all N composites are encoded at its start);
- ``engine-episodes``: N threads, one per episode, each calling ``score`` with its own query
  (the engine keeps ``concurrent_calls`` calls in flight), as the reward node does;
- ``node``: N episodes publish RewardQuery messages to a reward node and answer each
  ProgressReward with their next query (on a private DDS domain).

The closed-loop paths count answers in a timed window, and take the rate as N / the mean time
between two answers of one episode (which also charges a dropped and re-sent query): episodes
answered together make answers come in waves, so a count in a window is off by up to a wave.

    python bench/bench_serving.py                      # about 4 minutes on 2 cores
    python bench/bench_serving.py --time-scale 0.25    # the same server, 4x faster (quick look)
    python bench/bench_serving.py --serve --port 8000  # only the stand-in server

Results go to bench/results/serving.json (one entry per path and time scale) and a markdown table.
"""
import argparse
import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import json
import os
import platform
import random
import re
import subprocess
import sys
import threading
import time

import numpy as np

try:
    import sole_r1_ros  # noqa: F401 - installed (colcon / pip -e)
except ImportError:  # running from a plain checkout
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                                    'sole_r1_ros'))

from results_io import merge_result  # noqa: E402  (bench/ is first on sys.path)
from spinning import HELP, HOW, spin  # noqa: E402

_RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results', 'serving.json')
_MODEL = 'sole-r1-bench'
_GOAL = 'close the drawer'


# -- the stand-in server ---------------------------------------------------------------------
class BatchingEngine:
    """Continuous batching in real time: requests in flight decode in lockstep.

    Every change of the in-flight set first advances all requests by the steps done since the
    last change, at the step time of the old set, so a request slows down while others join.
    """

    def __init__(self, prefill_s: float, step_s: float, step_growth: float) -> None:
        self.prefill_s, self.step_s_1, self.step_growth = prefill_s, step_s, step_growth
        self._cond = threading.Condition()
        self._remaining: dict[int, float] = {}
        self._last = time.monotonic()
        self._next_id = 0

    def step_s(self, in_flight: int) -> float:
        return self.step_s_1 * (1.0 + self.step_growth * (max(1, in_flight) - 1))

    def ideal_latency_s(self, in_flight: int, tokens: int) -> float:
        return self.prefill_s + tokens * self.step_s(in_flight)

    def generate(self, tokens: int) -> None:
        time.sleep(self.prefill_s)
        with self._cond:
            self._advance()
            key, self._next_id = self._next_id, self._next_id + 1
            self._remaining[key] = float(tokens)
            self._cond.notify_all()
            while self._remaining[key] > 1e-6:
                self._cond.wait(self._remaining[key] * self.step_s(len(self._remaining)))
                self._advance()
            del self._remaining[key]
            self._cond.notify_all()

    def _advance(self) -> None:
        now = time.monotonic()
        if self._remaining:
            steps = (now - self._last) / self.step_s(len(self._remaining))
            for key in self._remaining:
                self._remaining[key] -= steps
        self._last = now


def _serve(engine: BatchingEngine, port: int, max_tokens: int) -> ThreadingHTTPServer:
    reply_text = '<think>The drawer moved a little.</think><answer>50%</answer>'

    class Handler(BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'   # keep-alive, like vLLM's uvicorn

        def log_message(self, *args):
            pass

        def do_GET(self):
            self._send({'object': 'list', 'data': [{'id': _MODEL, 'object': 'model'}]})

        def do_POST(self):
            body = self.rfile.read(int(self.headers['Content-Length']))
            # It shares the client's cores here, so it does not parse the megabyte of image:
            # max_tokens sits after the messages.
            found = re.search(rb'"max_tokens": *(\d+)', body[-400:])
            tokens = min(int(found.group(1)) if found else max_tokens, max_tokens)
            engine.generate(tokens)
            self._send({'id': 'bench', 'object': 'chat.completion', 'model': _MODEL,
                        'choices': [{'index': 0, 'finish_reason': 'length',
                                     'message': {'role': 'assistant', 'content': reply_text}}],
                        'usage': {'prompt_tokens': 1168, 'completion_tokens': tokens}})

        def _send(self, payload):
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(('127.0.0.1', port), Handler)
    server.daemon_threads = True
    server.request_queue_size = 256
    return server


def _start_server_process(args) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, os.path.abspath(__file__), '--serve', '--port', '0',
               '--prefill-s', str(args.prefill_s), '--step-s', str(args.step_s),
               '--time-scale', str(args.time_scale),
               '--step-growth', str(args.step_growth), '--tokens', str(args.tokens)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline().split()
    if len(line) != 2 or line[0] != 'port':
        process.kill()
        raise RuntimeError(f'the stand-in server did not start: {line}')
    return process, f'http://127.0.0.1:{line[1]}/v1'


# -- camera-like frames ------------------------------------------------------------------------
def _frames(count: int, seed: int) -> list[np.ndarray]:
    """384x384 scenes (a gradient, a box that moves, sensor noise) passed through JPEG q90 as
    the camera node's tiles are, so the PNG the backend sends costs what a camera frame does."""
    from sole_r1_ros.camera import decode_tile, encode_tile
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:384, 0:384]
    base = np.stack([x * 0.4 + 60, y * 0.3 + 50, (x + y) * 0.2 + 40], -1)
    frames = []
    for i in range(count):
        image = base + rng.normal(0.0, 3.0, base.shape)
        left = 60 + 20 * i
        image[150:260, left:left + 90] = (200, 60, 40)
        frames.append(decode_tile(encode_tile(np.clip(image, 0, 255).astype(np.uint8), 'jpeg')))
    return frames


# -- measurement -------------------------------------------------------------------------------
def _summary(in_flight: int, latencies: list[float], answered: int, valid: int, wall_s: float,
             ideal_rate: float, rate: float | None = None) -> dict:
    if valid < answered:   # an error reply is fast: counted, it made 675 % of ideal
        raise RuntimeError(f'{answered - valid} of {answered} answers at {in_flight} in flight '
                           'were not valid rewards (the server failed or the model did not '
                           'answer in format): no rate is measured from them')
    latencies = np.asarray(latencies)
    rate = answered / wall_s if rate is None else rate
    return {'in_flight': in_flight, 'rewards': answered, 'valid': valid,
            'wall_s': round(wall_s, 2), 'rewards_per_s': round(rate, 3),
            'ideal_rewards_per_s': round(ideal_rate, 3),
            'fraction_of_ideal': round(rate / ideal_rate, 3),
            'latency_p50_s': round(float(np.percentile(latencies, 50)), 3),
            'latency_p99_s': round(float(np.percentile(latencies, 99)), 3)}


def _engine_level(engine, frames, in_flight: int, rounds: int, ideal_rate: float) -> dict:
    from sole_r1_ros.reward import ProgressQuery
    external, wrist = frames
    progress = [0] * in_flight
    latencies, answered, valid = [], 0, 0
    start = None
    for round_index in range(rounds + 1):   # round 0 warms up connections and threads
        if round_index == 1:
            start = time.perf_counter()
        step = round_index + 1
        queries = [ProgressQuery(
            f'ep{e}', step, _GOAL, external[0], external[step % 8], external[(step + 1) % 8],
            wrist[0], wrist[step % 8], wrist[(step + 1) % 8], previous_progress=progress[e])
            for e in range(in_flight)]
        begin = time.perf_counter()
        results = engine.score(queries)
        if round_index == 0:
            continue
        latencies += [time.perf_counter() - begin] * in_flight
        answered += len(results)
        valid += sum(r.valid for r in results)
        progress = [r.progress for r in results]
    return _summary(in_flight, latencies, answered, valid, time.perf_counter() - start,
                    ideal_rate)


def run_engine(args, url: str, frames, per_episode: bool = False) -> list[dict]:
    from sole_r1_ros.reward import make_backend, OpenAIConfig, RewardConfig, RewardEngine
    config = RewardConfig(backend='openai', model=_MODEL, max_new_tokens=args.tokens,
                          max_batch_size=max(args.in_flight),
                          openai=OpenAIConfig(base_url=url, image_format=args.image_format))
    levels = []
    with RewardEngine(make_backend(config), config) as engine:
        for n in args.in_flight:
            if per_episode:
                levels.append(_engine_episodes_level(engine, frames, n, args, _ideal(args, n)))
            else:
                levels.append(_engine_level(engine, frames, n, args.rounds, _ideal(args, n)))
            print(f'engine {n:3d} in flight: {levels[-1]}', file=sys.stderr)
    return levels


def _engine_episodes_level(engine, frames, in_flight: int, args, ideal_rate: float) -> dict:
    """N threads, each an episode that scores its next query when its answer is back."""
    from sole_r1_ros.reward import ProgressQuery
    external, wrist = frames
    start = time.perf_counter()
    warmup_s, timed_s = _window(in_flight, args, ideal_rate)
    records: list[tuple[float, float, bool, float]] = []

    def episode(e: int) -> None:
        progress, last = 0, start
        for step in range(1, 10**6):
            query = ProgressQuery(
                f'ep{e}', step, _GOAL, external[0], external[step % 8],
                external[(step + 1) % 8], wrist[0], wrist[step % 8], wrist[(step + 1) % 8],
                previous_progress=progress)
            begin = time.perf_counter()
            [result] = engine.score([query])
            now = time.perf_counter()
            records.append((now, now - begin, result.valid, now - last))
            progress, last = result.progress, now
            if now >= start + warmup_s + timed_s:
                return

    threads = [threading.Thread(target=episode, args=(e,)) for e in range(in_flight)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return _window_summary(in_flight, records, start + warmup_s, timed_s, ideal_rate)


def _window(in_flight: int, args, ideal_rate: float) -> tuple[float, float]:
    """Warm-up and timed window of a closed-loop level [s].

    The warm-up spans two answers of each episode: episodes that start together have their
    composites encoded together, which delays their first answers by up to N encodings; after
    that they drift apart.
    """
    latency_s = in_flight / ideal_rate
    return 2.5 * latency_s, max(args.rounds * latency_s, 3.0)


def _window_summary(in_flight: int, records, begin: float, timed_s: float,
                    ideal_rate: float) -> dict:
    """Summarise the answers in [begin, begin + timed_s).

    Each record is (answer time, latency, valid, time since the episode's previous answer or
    its first query).
    """
    timed = [r for r in list(records) if begin <= r[0] < begin + timed_s]
    if not timed:
        return {'in_flight': in_flight, 'rewards': 0, 'error': 'no answers'}
    rate = in_flight / float(np.mean([r[3] for r in timed]))
    summary = _summary(in_flight, [r[1] for r in timed], len(timed), sum(r[2] for r in timed),
                       timed_s, ideal_rate, rate)
    summary['answers_in_window_per_s'] = round(len(timed) / timed_s, 3)
    return summary


class _Episodes:
    """N closed-loop episodes on a probe node: each answer triggers the episode's next query."""

    def __init__(self, node, in_flight: int, tiles, prefix: str) -> None:
        from sole_r1_interfaces.msg import ProgressReward, RewardQuery
        self._message = RewardQuery
        self._tiles = tiles
        self._ids = [f'{prefix}_ep{e}' for e in range(in_flight)]
        self._sent: dict[tuple[str, int], float] = {}
        self._last: dict[str, float] = {}   # an episode's previous answer (or first query)
        self._lock = threading.Lock()
        # (answer time, latency, valid, time since the episode's previous answer)
        self.records: list[tuple[float, float, bool, float]] = []
        self.publisher = node.create_publisher(RewardQuery, 'sole_r1/query', 100)
        self.subscription = node.create_subscription(ProgressReward, 'sole_r1/progress',
                                                     self._on_reward, 100)
        self.stopped = False
        self.resent = 0
        self._resent_at: dict[tuple[str, int], float] = {}

    def start(self) -> None:
        now = time.perf_counter()
        for episode in self._ids:
            self._last[episode] = now
            self._publish(episode, 1)

    def resend_overdue(self, overdue_s: float) -> None:
        """Publish again a query that got no answer for ``overdue_s``, as a camera node's next
        stride would; the node's query subscription may have dropped it in a burst."""
        now = time.perf_counter()
        with self._lock:
            overdue = [key for key, sent in self._sent.items()
                       if now - max(sent, self._resent_at.get(key, 0.0)) > overdue_s]
            for key in overdue:
                self._resent_at[key] = now
        for episode, step in overdue:   # the latency still counts from the first send
            self.resent += 1
            self._publish(episode, step, keep_time=True)

    def _publish(self, episode: str, step: int, keep_time: bool = False) -> None:
        external, wrist = self._tiles
        msg = self._message(episode_id=episode, step=step, trigger='stride',
                            privileged_progress=float('nan'))
        msg.header.stamp.sec = step
        msg.first_external, msg.current_external = external[0], external[step % 8]
        msg.first_wrist, msg.current_wrist = wrist[0], wrist[step % 8]
        with self._lock:
            if not keep_time:
                self._sent[(episode, step)] = time.perf_counter()
            elif (episode, step) not in self._sent:   # answered meanwhile
                return
        self.publisher.publish(msg)

    def _on_reward(self, msg) -> None:
        now = time.perf_counter()
        with self._lock:
            sent = self._sent.pop((msg.episode_id, msg.step), None)
            if sent is None:
                return
            last, self._last[msg.episode_id] = self._last[msg.episode_id], now
        self.records.append((now, now - sent, msg.valid, now - last))
        if not self.stopped:
            self._publish(msg.episode_id, msg.step + 1)


def run_node(args, url: str, frames) -> list[dict]:
    import rclpy
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CompressedImage

    from sole_r1_ros.camera import encode_tile
    from sole_r1_ros.nodes.reward_node import RewardNode
    tiles = [[CompressedImage(format='jpeg', data=encode_tile(f, 'jpeg')) for f in view]
             for view in frames]
    context = rclpy.Context()
    # A private DDS domain: another reward node on this machine (a demo, a test) would answer
    # our queries, and ours would answer theirs.
    rclpy.init(context=context, domain_id=args.domain_id)
    node = RewardNode(context=context, parameter_overrides=[
        Parameter('backend', value='openai'), Parameter('model', value=_MODEL),
        Parameter('openai.base_url', value=url),
        Parameter('openai.image_format', value=args.image_format),
        Parameter('goal', value=_GOAL),
        Parameter('max_new_tokens', value=args.tokens),
        Parameter('max_batch_size', value=max(args.in_flight)),
        Parameter('max_episodes', value=max(args.in_flight)),
        Parameter('annotate', value=args.annotate == 'on')])
    probe = rclpy.create_node('bench_episodes', context=context)
    spinning = spin((node, probe), args.executor, context)
    levels = []
    try:
        node.trigger_configure()
        node.trigger_activate()
        for n in args.in_flight:
            node.timing.clear()
            levels.append(_node_level(probe, tiles, n, args, _ideal(args, n)))
            levels[-1].update(_node_timing(list(node.timing)))
            print(f'node   {n:3d} in flight: {levels[-1]}', file=sys.stderr)
    finally:
        spinning.close()
        node.destroy_node()
        probe.destroy_node()
        rclpy.try_shutdown(context=context)
    return levels


def _node_level(probe, tiles, in_flight: int, args, ideal_rate: float) -> dict:
    episodes = _Episodes(probe, in_flight, tiles, f'n{in_flight}')
    latency_s = in_flight / ideal_rate
    deadline = time.monotonic() + 30.0
    while probe.count_subscribers('sole_r1/query') == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    warmup_s, timed_s = _window(in_flight, args, ideal_rate)
    start = time.perf_counter()
    episodes.start()
    while time.perf_counter() < start + warmup_s + timed_s:
        time.sleep(0.25)
        episodes.resend_overdue(2.0 * latency_s + 2.0)
    episodes.stopped = True
    time.sleep(1.2 * latency_s)   # the last answers drain before the next level
    probe.destroy_publisher(episodes.publisher)
    probe.destroy_subscription(episodes.subscription)
    # Not Little's law (N / mean latency of the answered queries): the node may drop queries
    # (see queries_resent); the time between two answers of an episode includes the re-send.
    summary = _window_summary(in_flight, episodes.records, start + warmup_s, timed_s,
                              ideal_rate)
    summary['queries_resent'] = episodes.resent
    return summary


def _node_timing(timing: list[dict]) -> dict:
    """Where the node's time went: batch sizes it formed, and per answered query the wait for
    the worker, the backend call, and publishing (ProgressReward, annotated image, marker)."""
    if not timing:
        return {}

    def median(key):
        return round(float(np.median([t[key] for t in timing])), 3)
    return {'node_batch_mean': round(float(np.mean([t['batch'] for t in timing])), 1),
            'node_queue_s_median': median('queue_s'), 'node_model_s_median': median('model_s'),
            'node_publish_s_median': median('publish_s')}


def _ideal(args, in_flight: int) -> float:
    engine = BatchingEngine(args.prefill_s * args.time_scale, args.step_s * args.time_scale,
                            args.step_growth)
    return in_flight / engine.ideal_latency_s(in_flight, args.tokens)


def _machine_name(machine: dict) -> str:
    """'2-core AMD EPYC', with its GPU where it has one."""
    gpu = f", {machine['gpu']}" if machine.get('gpu') else ''
    return f"{machine.get('cores', '?')}-core {machine.get('cpu', '?')}{gpu}"


def _machine() -> dict:
    cpu = platform.processor()
    try:
        with open('/proc/cpuinfo') as stream:
            cpu = next(line.split(':', 1)[1].strip() for line in stream
                       if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    return {'cpu': cpu, 'cores': os.cpu_count(), 'gpu': None, 'python': platform.python_version()}


def _loadavg() -> str:
    try:
        with open('/proc/loadavg') as stream:
            return ' '.join(stream.read().split()[:3])
    except OSError:
        return 'unknown'


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--in-flight', type=int, nargs='+', default=[1, 4, 16, 64])
    parser.add_argument('--paths', nargs='+', default=['engine', 'engine-episodes', 'node'],
                        choices=['engine', 'engine-episodes', 'node'])
    parser.add_argument('--prefill-s', type=float, default=0.08,
                        help='server: prefill of one request [s]')
    parser.add_argument('--step-s', type=float, default=0.006,
                        help='server: one decode step with one request in flight [s]')
    parser.add_argument('--step-growth', type=float, default=0.054,
                        help='server: relative step-time growth per extra request in flight '
                             '(0.054: 16 ms at 32)')
    parser.add_argument('--tokens', type=int, default=200, help='new tokens per reply')
    parser.add_argument('--time-scale', type=float, default=1.0,
                        help='multiply prefill and step times (< 1 for a quicker run)')
    parser.add_argument('--rounds', type=int, default=4,
                        help='timed rounds per level (node: the same time)')
    parser.add_argument('--image-format', default='png', choices=['png', 'jpeg'])
    parser.add_argument('--executor', default='per-node', choices=HOW,
                        help=f"the node path: the reward node and the episodes' probe. {HELP}")
    parser.add_argument('--annotate', default='on', choices=['on', 'off'],
                        help="reward node's annotated image and marker per answer")
    parser.add_argument('--domain-id', type=int, default=random.randint(101, 200),
                        help='ROS_DOMAIN_ID of the node path (default: random in 101-200)')
    parser.add_argument('--out', default=_RESULTS)
    parser.add_argument('--serve', action='store_true', help='only run the stand-in server')
    parser.add_argument('--table-only', action='store_true',
                        help='only rewrite serving.md from serving.json')
    parser.add_argument('--port', type=int, default=8000, help='--serve: port (0: any)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = _parse(argv)
    if args.table_only:
        write_markdown(args.out)
        return 0
    if args.serve:
        engine = BatchingEngine(args.prefill_s * args.time_scale, args.step_s * args.time_scale,
                                args.step_growth)
        server = _serve(engine, args.port, args.tokens)
        print(f'port {server.server_address[1]}', flush=True)
        server.serve_forever()
        return 0
    frames = (_frames(8, 0), _frames(8, 1))
    process, url = _start_server_process(args)
    load_before = _loadavg()
    # One entry per variant: 'engine', 'node', 'engine@jpeg', 'node@x0.25', ...
    suffix = ('' if args.time_scale == 1.0 else f'@x{args.time_scale:g}') + \
        ('' if args.image_format == 'png' else f'@{args.image_format}')
    try:
        for path in args.paths:
            if path == 'node':
                levels = run_node(args, url, frames)
            else:
                levels = run_engine(args, url, frames, per_episode=path == 'engine-episodes')
            name = path + suffix + ('@no-annotate' if path == 'node' and args.annotate == 'off'
                                    else '') + ('@shared-multi' if path == 'node' and
                                                args.executor == 'shared-multi' else '')
            merge_result(args.out, name, {
                'date': datetime.date.today().isoformat(), 'machine': _machine(),
                'loadavg_before': load_before, 'loadavg_after': _loadavg(),
                'server': {'prefill_s': args.prefill_s * args.time_scale,
                           'step_s': args.step_s * args.time_scale,
                           'step_growth': args.step_growth, 'tokens': args.tokens},
                'image_format': args.image_format,
                'node_annotate': args.annotate if path == 'node' else None, 'levels': levels})
            _table(name, levels)
    finally:
        process.terminate()
        process.wait(timeout=10)
    print(f'load average {load_before} before, {_loadavg()} after '
          f'({_machine()["cpu"]}, {os.cpu_count()} cores)')
    write_markdown(args.out)
    return 0


def write_markdown(results: str) -> str:
    """serving.md beside ``results``: every entry's levels in one table; returns its path."""
    with open(results, encoding='utf-8') as stream:
        entries = json.load(stream)
    # Each entry's own machine: entries of several machines share the file (one footer named
    # the first's for every row).
    lines = ['| path | in flight | rewards/s | ideal | % of ideal | p50 s | p99 s | valid | '
             'date, load before, machine |', '|---|---|---|---|---|---|---|---|---|']
    for name, entry in entries.items():
        for level in entry['levels']:
            if 'error' in level:
                lines.append(f"| {name} | {level['in_flight']} | {level['error']} "
                             '| | | | | | |')
                continue
            lines.append(
                f"| {name} | {level['in_flight']} | {level['rewards_per_s']:.2f} | "
                f"{level['ideal_rewards_per_s']:.2f} | {100 * level['fraction_of_ideal']:.0f} % "
                f"| {level['latency_p50_s']:.2f} | {level['latency_p99_s']:.2f} | "
                f"{level['valid']}/{level['rewards']} | {entry['date']}, "
                f"{entry['loadavg_before'].split()[0]}, {_machine_name(entry['machine'])} |")
    lines += ['', 'Paths: `engine` = one RewardEngine.score call per round for every episode; '
              '`engine-episodes` = one thread per episode through the engine (as the node '
              'works); `node` = the reward node over DDS, each node on its own single-threaded '
              'executor (`@shared-multi`: the node and the probe on one MultiThreadedExecutor, '
              'as before 2026-12-06). `@jpeg`: JPEG tiles (PNG otherwise); '
              '`@main-<commit>`: the same bench on that commit, run in turns. Ideal = the '
              "stand-in server's throughput with that many requests in flight."]
    path = os.path.join(os.path.dirname(os.path.abspath(results)), 'serving.md')
    with open(path, 'w', encoding='utf-8') as stream:
        stream.write('\n'.join(lines) + '\n')
    print(f'wrote {path}')
    return path


def _table(name: str, levels: list[dict]) -> None:
    print(f'\n| {name}: in flight | rewards/s | ideal | % of ideal | p50 s | p99 s | valid |')
    print('|---|---|---|---|---|---|---|')
    for level in levels:
        if 'error' in level:
            print(f"| {level['in_flight']} | {level['error']} | | | | | |")
            continue
        print(f"| {level['in_flight']} | {level['rewards_per_s']:.2f} | "
              f"{level['ideal_rewards_per_s']:.2f} | {100 * level['fraction_of_ideal']:.0f} % | "
              f"{level['latency_p50_s']:.2f} | {level['latency_p99_s']:.2f} | "
              f"{level['valid']}/{level['rewards']} |")


if __name__ == '__main__':
    sys.exit(main())

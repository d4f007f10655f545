"""Overhead of camera_node and reward_node per query, apart from model time; frame age.

A 30 Hz camera (external + wrist, 640x480 rgb8; ``--encoding bgr8`` as many drivers send)
feeds camera_node (stride 10 -> 3 queries/s); reward_node answers with a backend that takes a
fixed model time, so what is measured is the nodes' own work: frame in to query out, query
wait, result to message out, and the age of the frame when inference starts. Writes
bench/results/nodes.json and prints a table.

Each node spins on its own single-threaded executor, as launched (``--executor``: spinning.py).
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from sole_r1_interfaces.msg import ProgressReward
from sole_r1_ros.nodes.camera_node import CameraNode
from sole_r1_ros.image_msgs import array_to_image
from sole_r1_ros.nodes.reward_node import RewardNode
from sole_r1_ros.reward import register_backend
from sole_r1_ros.reward.backends.base import RawReply
from results_io import hardware
from spinning import HELP, HOW, spin

_RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results')
MODEL_TIME_S = 0.25


class FixedTimeBackend:
    """Answers 50% after MODEL_TIME_S: stands in for a GPU model of known speed."""

    model_id = 'fixed-time'

    @classmethod
    def from_config(cls, config):
        return cls()

    def generate(self, requests):
        time.sleep(MODEL_TIME_S)
        return [RawReply('<think>bench</think><answer>50%</answer>', MODEL_TIME_S)
                for _ in requests]

    def close(self):
        pass


def _ms(values) -> dict[str, float]:
    values = sorted(values)
    if not values:
        return {'median_ms': float('nan'), 'p90_ms': float('nan'), 'n': 0}
    return {'median_ms': round(1e3 * statistics.median(values), 3),
            'p90_ms': round(1e3 * values[math.ceil(0.9 * len(values)) - 1], 3),   # nearest rank
            'n': len(values)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--seconds', type=float, default=15.0)
    parser.add_argument('--rate', type=float, default=30.0)
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--executor', default='per-node', choices=HOW, help=HELP)
    parser.add_argument('--tile-format', default='png', choices=('png', 'jpeg'),
                        help="the camera node's tile_format (png, its default)")
    parser.add_argument('--encoding', default='rgb8', choices=('rgb8', 'bgr8'),
                        help="the cameras' encoding (bgr8: OpenCV and many drivers)")
    args = parser.parse_args()
    sys.modules.setdefault('bench_nodes', sys.modules[__name__])
    register_backend('fixed-time', 'bench_nodes:FixedTimeBackend')
    rclpy.init()
    camera = CameraNode(parameter_overrides=[Parameter('stride', value=10),
                                             Parameter('motion_jump_threshold', value=0.0),
                                             Parameter('tile_format', value=args.tile_format)])
    reward = RewardNode(parameter_overrides=[Parameter('backend', value='fixed-time')])
    reward.trigger_configure()
    reward.trigger_activate()
    source = Node('bench_camera')
    external = source.create_publisher(Image, 'camera/external/image_raw',
                                       qos_profile_sensor_data)
    wrist = source.create_publisher(Image, 'camera/wrist/image_raw', qos_profile_sensor_data)
    end_to_end = []

    def on_reward(msg: ProgressReward) -> None:
        age = source.get_clock().now() - rclpy.time.Time.from_msg(msg.header.stamp)
        end_to_end.append(age.nanoseconds * 1e-9)

    source.create_subscription(ProgressReward, 'sole_r1/progress', on_reward, 10)
    spinning = spin((camera, reward, source), args.executor)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (args.height, args.width, 3), dtype=np.uint8)
              for _ in range(8)]
    period, start, sent = 1.0 / args.rate, time.monotonic(), 0
    while time.monotonic() - start < args.seconds:
        stamp = source.get_clock().now().to_msg()
        for publisher, view in ((external, 'external_camera'), (wrist, 'wrist_camera')):
            msg = array_to_image(frames[sent % len(frames)], args.encoding, msg=Image())
            msg.header.stamp, msg.header.frame_id = stamp, view
            publisher.publish(msg)
        sent += 1
        time.sleep(max(0.0, start + sent * period - time.monotonic()))
    time.sleep(1.0)
    timing = list(reward.timing)
    if len(timing) < 0.5 * len(camera.query_overhead_s):   # a run that answered little
        raise RuntimeError(f'{len(timing)} queries answered of {len(camera.query_overhead_s)} '
                           'sent: no latency is measured from such a run')
    result = {
        'date': time.strftime('%Y-%m-%dT%H:%M'), 'hardware': hardware(),
        'load_average': round(os.getloadavg()[0], 2),
        'queries_sent': len(camera.query_overhead_s),
        'executor': args.executor, 'tile_format': args.tile_format, 'camera_hz': args.rate,
        'image': f'{args.width}x{args.height} {args.encoding} x2',
        'model_time_s': MODEL_TIME_S, 'frames_sent': sent,
        'queries_answered': len(timing),
        'camera_node_frame_in_to_query_out': _ms(camera.query_overhead_s),
        'reward_node_queue_wait': _ms([t['queue_s'] for t in timing]),
        'reward_node_result_to_message_out': _ms([t['publish_s'] for t in timing]),
        'model_call': _ms([t['model_s'] for t in timing]),
        'frame_age_at_inference': _ms([t['frame_age_s'] for t in timing]),
        'frame_to_reward_message': _ms(end_to_end),
    }
    spinning.close()
    for node in (camera, reward, source):
        node.destroy_node()
    rclpy.try_shutdown()
    os.makedirs(_RESULTS, exist_ok=True)
    with open(os.path.join(_RESULTS, 'nodes.json'), 'w') as stream:
        json.dump(result, stream, indent=2)
    print(f"| stage ({result['image']} at {args.rate:.0f} Hz, model {MODEL_TIME_S * 1e3:.0f} ms, "
          f'{args.executor} executor)'
          ' | median ms | p90 ms | n |\n|---|---|---|---|')
    for key, value in result.items():
        if isinstance(value, dict) and 'median_ms' in value:   # a stage, not the hardware
            print(f"| {key.replace('_', ' ')} | {value['median_ms']} | {value['p90_ms']} | "
                  f"{value['n']} |")
    return 0


if __name__ == '__main__':
    sys.exit(main())

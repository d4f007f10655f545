"""How many camera frames from another process reach a best-effort and a matched subscription.

A camera driver runs in its own process. Sensor-data QoS (best effort) is the convention for
camera subscriptions, but many drivers publish reliably (RealSense, usb_cam and the Gazebo
bridge by default), and a 640x480 frame crosses processes as UDP fragments that best effort
drops whole. For each case a publisher process sends ``--frames`` random frames at a rate, and
one node in this process subscribes twice to the topic: with ``qos_profile_sensor_data`` and
with ``nodes.camera_qos.MatchedSubscription`` (reliable while every publisher is), as the
camera node, the learner, the self-filter and the recorder now do. Counted: frames received
of those sent, and the newest frame's delivery delay.

    python bench/bench_camera_qos.py                 # about 1.5 minutes
    python bench/bench_camera_qos.py --frames 30     # a smoke run

Writes ``bench/results/camera_qos.json`` and ``.md`` and prints the table. The middleware is
the one ``RMW_IMPLEMENTATION`` names (Fast DDS by default), with its default transports, or
with the ones ``FASTDDS_BUILTIN_TRANSPORTS`` names (``make bench-camera-qos`` runs it again with
``LARGE_DATA``, which must then be set in every process of the graph, the driver's too: a
process with it and one without exchanged no frame at all here).
"""
import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import time

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import hardware, merge_result  # noqa: E402

CASES = (   # (publisher reliability, width, height, rate Hz)
    ('reliable', 640, 480, 10.0), ('reliable', 640, 480, 30.0), ('reliable', 64, 64, 30.0),
    ('best_effort', 640, 480, 10.0))


def _publish(reliability: str, width: int, height: int, rate: float, frames: int) -> None:
    """The driver: wait for both subscriptions, send ``frames`` frames, linger for resends."""
    import numpy as np
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node('bench_camera_driver')
    policy = (ReliabilityPolicy.RELIABLE if reliability == 'reliable'
              else ReliabilityPolicy.BEST_EFFORT)
    publisher = node.create_publisher(Image, 'bench_camera/image_raw',
                                      QoSProfile(depth=5, reliability=policy))
    deadline = time.monotonic() + 30.0
    while publisher.get_subscription_count() < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2.5)   # the matched subscription follows the publisher within a second
    data = np.random.default_rng(0).integers(0, 256, width * height * 3, np.uint8).tobytes()
    message = Image(height=height, width=width, encoding='rgb8', step=width * 3, data=data)
    start = time.monotonic()
    for index in range(frames):
        now = node.get_clock().now().to_msg()
        message.header.stamp = now
        message.header.frame_id = str(index)
        publisher.publish(message)
        time.sleep(max(0.0, start + (index + 1) / rate - time.monotonic()))
    time.sleep(1.0)
    node.destroy_node()
    rclpy.shutdown()


def _measure(reliability: str, width: int, height: int, rate: float, frames: int) -> dict:
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from sole_r1_ros.nodes.camera_qos import MatchedSubscription

    node = rclpy.create_node('bench_camera_subscriber')
    received = {'best_effort': [], 'matched': []}

    def counter(name):
        def count(message: Image) -> None:
            sent = message.header.stamp.sec + message.header.stamp.nanosec * 1e-9
            received[name].append(time.time() - sent)
        return count

    node.create_subscription(Image, 'bench_camera/image_raw', counter('best_effort'),
                             qos_profile_sensor_data)
    matched = MatchedSubscription(node, Image, 'bench_camera/image_raw', counter('matched'))
    driver = subprocess.Popen([sys.executable, __file__, '--publish', reliability, str(width),
                               str(height), str(rate), str(frames)])
    try:
        while driver.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.05)
        for _ in range(20):
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        if driver.poll() is None:
            driver.kill()
        matched.destroy()
        node.destroy_node()
    result = {'publisher': reliability, 'width': width, 'height': height, 'rate_hz': rate,
              'sent': frames, 'matched_reliability': matched.reliability.name.lower()}
    for name, delays in received.items():
        result[f'{name}_received'] = len(delays)
        result[f'{name}_share'] = round(len(delays) / frames, 3)
        result[f'{name}_median_delay_ms'] = (
            round(1e3 * sorted(delays)[len(delays) // 2], 1) if delays else None)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--frames', type=int, default=120, help='frames sent per case')
    parser.add_argument('--out', default=str(Path(__file__).parent / 'results' /
                                             'camera_qos.json'))
    parser.add_argument('--publish', nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publish:
        reliability, width, height, rate, frames = args.publish
        _publish(reliability, int(width), int(height), float(rate), int(frames))
        return
    import rclpy
    rclpy.init()
    try:
        rows = [_measure(*case, args.frames) for case in CASES]
    finally:
        rclpy.shutdown()
    transports = os.environ.get('FASTDDS_BUILTIN_TRANSPORTS') or 'default'
    result = {'rows': rows, 'rmw': os.environ.get('RMW_IMPLEMENTATION') or 'default',
              'fastdds_builtin_transports': transports,
              'date': time.strftime('%Y-%m-%d %H:%M'), 'hardware': hardware()}
    merge_result(args.out, f'transports_{transports.lower()}', result)
    print(f'transports: {transports}')
    print('\n'.join(_table(rows)))
    with open(args.out, encoding='utf-8') as stream:
        everything = json.load(stream)
    lines = ['# Camera frames from another process: best effort against matched subscriptions',
             '', f'`make bench-camera-qos`; {args.frames} random rgb8 frames per row from a '
             'publisher process, one subscriber node with both subscriptions.', '']
    for key, run in sorted(everything.items()):
        lines += [f"## {run['fastdds_builtin_transports']} transports ({run['date']}, "
                  f"{run['hardware']['cpu_model']}, {run['hardware']['cpu_cores']} cores, rmw "
                  f"{run['rmw']})", '', *_table(run['rows']), '']
    Path(args.out).with_suffix('.md').write_text('\n'.join(lines), encoding='utf-8')


def _table(rows: list[dict]) -> list[str]:
    lines = ['| publisher | frame | rate | best effort received | matched received (its QoS) '
             '| median delay, best effort / matched |', '|---|---|---|---|---|---|']
    for row in rows:
        lines.append(
            f"| {row['publisher']} | {row['width']}x{row['height']} | {row['rate_hz']:g} Hz | "
            f"{row['best_effort_received']} / {row['sent']} | {row['matched_received']} / "
            f"{row['sent']} ({row['matched_reliability']}) | "
            f"{row['best_effort_median_delay_ms']} / {row['matched_median_delay_ms']} ms |")
    return lines


if __name__ == '__main__':
    main()

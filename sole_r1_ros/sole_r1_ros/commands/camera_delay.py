"""``sole-r1 camera-delay BAG --params YAML``: measure a camera's latency for the self-filter.

Reads a recorded bag of the arm moving (``sole-r1 record``: the camera, its ``camera_info`` and
``joint_states``) and the ``robot_mask_node`` section of a parameters file (the robot's model
and the camera's hand-eye calibration), draws the arm at a range of delays
(``camera/delay.py``) and prints the delay whose drawn motion agrees best with what changed in
the frames: the value of ``robot_mask_node.camera_delay_s``.
"""
import argparse
import json
import sys

import numpy as np

from sole_r1_ros.commands.reward_flags import check_writable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('bag', help='rosbag2 folder with the arm moving (sole-r1 record)')
    parser.add_argument('--params', required=True, metavar='YAML',
                        help="parameters file with a robot_mask_node section (the robot's "
                        'model, camera_link, camera_position, camera_orientation), e.g. '
                        'config/real_robot_learn.yaml')
    parser.add_argument('--view', default='external', choices=('external', 'wrist'),
                        help='camera/<view>/image_raw and camera_info')
    parser.add_argument('--image-topic', help="the camera's topic in the bag, where it is not "
                        "camera/<view>/image_raw (a driver's own, e.g. /cam_ext/color/image_raw)")
    parser.add_argument('--info-topic', help='its CameraInfo topic (default: camera_info beside '
                        'the image topic)')
    parser.add_argument('--joint-topic', default='joint_states')
    parser.add_argument('--range', nargs=2, type=float, default=(-0.05, 0.25),
                        metavar=('FROM', 'TO'), help='delays to try [s]')
    parser.add_argument('--step', type=float, default=0.005, help='between delays [s]')
    parser.add_argument('--max-frames', type=int, default=120,
                        help='frames used, evenly spread over the bag (each delay draws each)')
    parser.add_argument('--max-side', type=int, default=256,
                        help='frames and masks compared at most this many pixels long')
    parser.add_argument('--out', default='camera_delay.json', help='results JSON')
    parser.add_argument('--plot', help='PNG of the agreement against the delay')


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sole_r1_ros.bringup import load_params
    from sole_r1_ros.camera.delay import estimate_camera_delay
    from sole_r1_ros.camera.self_filter import RobotSelfFilter
    from sole_r1_ros.configuration import from_mapping
    from sole_r1_ros.image_msgs import image_to_rgb
    from sole_r1_ros.nodes.robot_mask_node import info_camera, info_fields, RobotMaskNodeConfig
    from sole_r1_ros.recording import read_topics

    if not args.step > 0 or not args.range[1] >= args.range[0]:   # NaN fails both
        raise ValueError(f'--range {args.range[0]} {args.range[1]} --step {args.step}: give '
                         'FROM <= TO and a positive step')
    if args.max_frames < 2:
        raise ValueError('--max-frames must be at least 2')
    check_writable(args.out, args.plot)
    section = load_params(args.params).get('robot_mask_node')
    if not section:
        raise ValueError(f'{args.params} has no robot_mask_node section: copy the commented '
                         'one of config/real_robot_learn.yaml and fill in your robot')
    config = from_mapping(RobotMaskNodeConfig, section)
    image_topic = args.image_topic or f'camera/{args.view}/image_raw'
    info_topic = args.info_topic or f"{image_topic.rsplit('/', 1)[0]}/camera_info"
    read = read_topics(args.bag, [image_topic, info_topic, args.joint_topic])
    for topic in (image_topic, info_topic, args.joint_topic):
        if not read[topic]:
            raise ValueError(f'{args.bag} has no {topic} messages: record the arm moving with '
                             f'the camera, its camera_info and {args.joint_topic}')
    # As the node draws: with P where rectified, binned and cropped as the camera_info says
    # (K alone drew a 640x360 crop of a 1280x720 camera as the whole view, stretched).
    camera = info_camera(info_fields(read[info_topic][0][1], config.rectified), config)
    images = read[image_topic]
    # Consecutive frames in runs of two, spread over the bag: the motion between a pair is
    # what is compared, so pairs, not single frames, are sampled.
    starts = np.unique(np.linspace(0, len(images) - 2, max(1, args.max_frames // 2)).astype(int))
    chosen = sorted({*starts, *(starts + 1)})
    camera = camera.scaled(args.max_side)
    frames = [_resize(image_to_rgb(images[k][1]), camera.width, camera.height) for k in chosen]
    stamps = [images[k][0] / 1e9 for k in chosen]
    # Rounded (and + 0.0, so that no -0.000 is printed) to the step's own decimals.
    candidates = np.round(np.arange(args.range[0], args.range[1] + args.step / 2, args.step),
                          6) + 0.0
    self_filter = RobotSelfFilter(config.robot_model, camera, config.mesh_dir,
                                  config.camera_link, config.hidden_links)
    try:
        joints = _joint_track(read[args.joint_topic], self_filter.joint_names, args.joint_topic)
        with tqdm(total=len(candidates) * len(frames), desc='drawing', unit='mask') as bar:
            def draw(positions):
                bar.update(1)
                return self_filter.mask(positions)
            estimate = estimate_camera_delay(frames, stamps, joints, draw, candidates)
    finally:
        self_filter.close()
    result = {'bag': str(args.bag), 'camera_delay_s': estimate.delay_s,
              'frame_pairs': estimate.frame_pairs,
              'candidates_s': list(estimate.candidates_s),
              'agreement': [round(a, 4) for a in estimate.agreement]}
    with open(args.out, 'w', encoding='utf-8') as stream:
        json.dump(result, stream, indent=2)
    if args.plot:
        _plot(args.plot, estimate)
    best = max(estimate.agreement)
    print(f'camera_delay_s: {estimate.delay_s:.3f}  (agreement {best:.3f} over '
          f'{estimate.frame_pairs} frame pairs; at 0 s: '
          f'{_at(estimate, 0.0)})')
    if best < 0.1:
        print('sole-r1 camera-delay: the drawn arm agrees little with what changed at any '
              'delay: check the calibration on the overlay first, and that the arm moves',
              file=sys.stderr)
    return 0


def _joint_track(messages, names, topic: str):
    """The model's joints over time, merged across the JointState messages as the node does.

    An arm and a gripper published apart on one topic are each message's joints over the
    newest of the others' (only messages that carried every joint were read: such a bag was
    refused). A sample is taken at each message once every joint has come; of equal stamps
    the last, which has them all, is kept.
    """
    from sole_r1_ros.camera.delay import JointTrack

    samples: dict[int, dict[str, float]] = {}
    merged: dict[str, float] = {}
    for stamp, msg in sorted(messages, key=lambda message: message[0]):
        ours = {name: float(position) for name, position in zip(msg.name, msg.position)
                if name in names}
        if not ours:
            continue   # another device's joints
        merged.update(ours)
        if len(merged) == len(names):
            samples[stamp] = dict(merged)
    if len(samples) < 2:
        missing = sorted(set(names) - set(merged))
        raise ValueError(f"{topic}: fewer than two moments with all of the model's joints "
                         f'{list(names)}' + (f' ({missing} never came)' if missing else ''))
    stamps = sorted(samples)
    return JointTrack([stamp / 1e9 for stamp in stamps], [samples[s] for s in stamps])


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    if image.shape[:2] == (height, width):
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def _at(estimate, delay_s: float) -> str:
    for candidate, agreement in zip(estimate.candidates_s, estimate.agreement):
        if abs(candidate - delay_s) < 1e-9:
            return f'{agreement:.3f}'
    return 'not tried'


def _plot(path: str, estimate) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.plot(estimate.candidates_s, estimate.agreement, marker='.')
    axes.axvline(estimate.delay_s, color='tab:green', linestyle='--',
                 label=f'camera_delay_s {estimate.delay_s:.3f}')
    axes.set(xlabel='delay [s]', ylabel='agreement (IoU)',
             title='drawn arm motion against changed pixels')
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)

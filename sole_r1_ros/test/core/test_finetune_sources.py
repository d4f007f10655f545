"""Dataset adapters: an episode folder, a recorded bag and a synth export -> training examples."""
import json

import numpy as np
import pytest

cv2 = pytest.importorskip('cv2')

from sole_r1_ros.cli import main  # noqa: E402
from sole_r1_ros.finetune import examples  # noqa: E402
from sole_r1_ros import labelled  # noqa: E402
from sole_r1_ros.labelled import video  # noqa: E402
from sole_r1_ros.reward import protocol  # noqa: E402


def _frames(count, seed, height=48, width=64):
    frames = []
    for i in range(count):
        frame = np.full((height, width, 3), (seed * 40) % 255, np.uint8)
        frame[4 + 3 * i:14 + 3 * i, 8:24] = (255, 255, 255)  # a square moving down
        frames.append(frame)
    return frames


def _write_video(path, frames, fps=10):
    return video.write_video(str(path), frames, fps)


def _decoded(path):
    return video.read_frames(str(path))


# ---------------------------------------------------------------- episode folder
@pytest.fixture
def episode_folder(tmp_path):
    root = tmp_path / 'robot'
    with_wrist = root / 'episodes' / 'a'
    with_wrist.mkdir(parents=True)
    _write_video(with_wrist / 'external.mp4', _frames(6, 1))
    _write_video(with_wrist / 'wrist.mp4', _frames(6, 2, 40, 40))
    (with_wrist / 'labels.json').write_text(json.dumps(
        {'task': 'Close the drawer.', 'progress': [0, 5, 20, 40, 70, 95]}))
    keypoints = root / 'episodes' / 'b'
    keypoints.mkdir()
    _write_video(keypoints / 'external.mp4', _frames(5, 3), fps=4)
    (keypoints / 'labels.json').write_text(json.dumps(
        {'task': 'Open the drawer', 'time_s': [0.0, 1.0], 'progress': [0, -40]}))
    return root


def test_episode_folder_prepares_exact_examples(episode_folder, tmp_path):
    out = tmp_path / 'data'
    assert main(['finetune', 'prepare', '--episodes', str(episode_folder), '--out', str(out),
                 '--num-queries', '2']) == 0
    loaded = examples.read_examples(str(out))
    by_episode = {e: [x for x in loaded if x.episode_id == e] for e in ('a', 'b')}
    first, second = by_episode['a']
    assert (first.step, second.step, second.previous_step) == (2, 5, 2)
    assert (first.previous_progress, first.progress) == (0, 20)
    assert (second.previous_progress, second.progress) == (20, 95)
    assert not first.external_only and first.goal == 'Close the drawer'
    # Keypoints at 4 fps: frame i is at i/4 s, so -40 % per second reaches -40 at frame 4.
    assert [(x.step, x.previous_progress, x.progress) for x in by_episode['b']] == [
        (2, 0, -20), (4, -20, -40)]
    assert all(x.external_only for x in by_episode['b'])
    from PIL import Image
    external = _decoded(episode_folder / 'episodes' / 'a' / 'external.mp4')
    wrist = _decoded(episode_folder / 'episodes' / 'a' / 'wrist.mp4')
    expected = protocol.build_composite(external[0], external[2], external[5],
                                        wrist[0], wrist[2], wrist[5])
    assert np.array_equal(np.asarray(Image.open(out / second.image)), expected)
    header = json.loads((out / examples.HEADER).read_text())
    assert header['num_examples'] == 4 and header['source']['schedule']['num_queries'] == 2


def test_episode_folder_errors_are_one_line(episode_folder, tmp_path, capsys):
    labels = episode_folder / 'episodes' / 'a' / 'labels.json'
    labels.write_text(json.dumps({'task': 'Close the drawer', 'progress': [0, 1, 2]}))
    assert main(['finetune', 'prepare', '--episodes', str(episode_folder),
                 '--out', str(tmp_path / 'd')]) == 2
    assert '3 progress labels for 6 frames' in capsys.readouterr().err
    assert main(['finetune', 'prepare', '--episodes', str(tmp_path / 'none'),
                 '--out', str(tmp_path / 'e')]) == 2
    assert 'no episodes/ folder' in capsys.readouterr().err
    # Flags that read a bag are refused with a folder, not ignored.
    assert main(['finetune', 'prepare', '--episodes', str(episode_folder), '--wrist-topic', '',
                 '--out', str(tmp_path / 'f')]) == 2
    assert '--wrist-topic read a --bag' in capsys.readouterr().err


def test_episodes_marked_val_are_kept_out_of_training_unless_asked(episode_folder, tmp_path):
    labels = episode_folder / 'episodes' / 'a' / 'labels.json'
    labels.write_text(json.dumps({**json.loads(labels.read_text()), 'split': 'val'}))
    assert main(['finetune', 'prepare', '--episodes', str(episode_folder), '--out',
                 str(tmp_path / 'train'), '--num-queries', '2']) == 0
    assert {x.episode_id for x in examples.read_examples(str(tmp_path / 'train'))} == {'b'}
    assert main(['finetune', 'prepare', '--episodes', str(episode_folder), '--out',
                 str(tmp_path / 'all'), '--num-queries', '2', '--split', 'all']) == 0
    assert {x.episode_id for x in examples.read_examples(str(tmp_path / 'all'))} == {'a', 'b'}
    with pytest.raises(ValueError, match='is a SOLE-R1 fine-tuning dataset'):
        labelled.load_episodes(str(tmp_path / 'all'))      # e.g. given to eval reward --data


# ---------------------------------------------------------------- recorded bag
def _write_bag(path, episodes):
    from rclpy.serialization import serialize_message
    from sole_r1_interfaces.msg import Episode

    from sole_r1_ros.image_msgs import array_to_image
    from sole_r1_ros.recording import BagWriter

    writer = BagWriter(path)
    for e, (episode_id, count) in enumerate(episodes):
        base = 100 * (e + 1)
        start = Episode(episode_id=episode_id)
        start.header.stamp.sec = base
        writer.write('/episode', 'sole_r1_interfaces/msg/Episode', base * 10**9,
                     serialize_message(start))
        for i, (ext, wri) in enumerate(zip(_frames(count, e), _frames(count, e + 5, 32, 32))):
            for topic, frame in (('/camera/external/image_raw', ext),
                                 ('/camera/wrist/image_raw', wri)):
                msg = array_to_image(frame, 'rgb8')
                stamp = msg.header.stamp
                stamp.sec, stamp.nanosec = base + i // 2, 500_000_000 * (i % 2)
                writer.write(topic, 'sensor_msgs/msg/Image', base * 10**9 + i,
                             serialize_message(msg))
    writer.close()


def test_a_dataset_is_not_written_into_the_episodes_it_is_made_from(episode_folder, capsys):
    """--out equal to --episodes wrote the dataset's images and examples among the episodes."""
    for out in (episode_folder, episode_folder / 'data'):
        assert main(['finetune', 'prepare', '--episodes', str(episode_folder), '--out',
                     str(out), '--num-queries', '2']) == 2
        assert 'is inside what it is made from' in capsys.readouterr().err
    assert not (episode_folder / 'examples.jsonl').exists()
    assert not (episode_folder / 'data').exists()


def test_recorded_bag_with_labels_prepares_examples(tmp_path):
    pytest.importorskip('rclpy')
    pytest.importorskip('sole_r1_interfaces.msg')
    bag = tmp_path / 'bag'
    _write_bag(bag, [('ep-a', 5), ('ep b', 4), ('ep-unlabelled', 3), ('ep-cut', 1)])
    labels = tmp_path / 'labels.json'
    labels.write_text(json.dumps({'task': 'Push the block', 'episodes': {
        'ep-cut': {'progress': [0]},           # one frame: skipped, not the whole prepare
        'ep-a': {'progress': [0, 10, 30, 60, 100]},
        'ep b': {'time_s': [0.0, 1.5], 'progress': [0, 60], 'task': 'Pull the block'}}}))
    out = tmp_path / 'data'
    assert main(['finetune', 'prepare', '--bag', str(bag), '--labels', str(labels),
                 '--out', str(out), '--stride', '2']) == 0
    loaded = examples.read_examples(str(out))
    assert [(x.episode_id, x.step, x.previous_progress, x.progress) for x in loaded] == [
        ('ep-a', 2, 0, 30), ('ep-a', 4, 30, 100),
        ('ep b', 2, 0, 40), ('ep b', 3, 40, 60)]  # frames every 0.5 s
    assert loaded[2].example_id == 'ep_b-000002' and loaded[2].goal == 'Pull the block'
    assert not any(x.external_only for x in loaded)
    from PIL import Image
    assert Image.open(out / loaded[0].image).size == (1162, 773)


def test_a_bag_is_prepared_decoding_only_the_frames_the_queries_show(tmp_path, monkeypatch):
    """Only the queried frames are decoded; the examples are the same.

    All of a long bag's frames did not fit in memory (100 GB for 30 min of two 640x480 cameras
    at 30 Hz).
    """
    pytest.importorskip('rclpy')
    pytest.importorskip('sole_r1_interfaces.msg')
    from sole_r1_ros.recording import bag as bag_module
    bag = tmp_path / 'bag'
    _write_bag(bag, [('ep-a', 30)])
    labels = tmp_path / 'labels.json'
    labels.write_text(json.dumps({'task': 'Push the block', 'episodes': {
        'ep-a': {'time_s': [0.0, 14.5], 'progress': [0, 100]}}}))
    decoded = []
    real = bag_module.image_to_rgb
    monkeypatch.setattr(bag_module, 'image_to_rgb', lambda msg: decoded.append(1) or real(msg))
    out = tmp_path / 'data'
    assert main(['finetune', 'prepare', '--bag', str(bag), '--labels', str(labels),
                 '--out', str(out), '--num-queries', '3']) == 0
    loaded = examples.read_examples(str(out))
    assert [(x.step, x.previous_progress, x.progress) for x in loaded] == [
        (10, 0, 34), (19, 34, 66), (29, 66, 100)]
    assert len(decoded) <= 2 * 4 * 2   # the first and 3 queried frames, both cameras (+ near)


@pytest.mark.parametrize('text, message', [
    (json.dumps({'task': 'x', 'episodes': {'other': {'progress': [0]}}}),
     'none of the 1 episode(s)'),
    ("{'task': 'x'}", 'labels.json: not JSON')])   # a file that is not JSON is named
def test_bag_without_matching_labels_is_an_error(tmp_path, capsys, text, message):
    pytest.importorskip('rclpy')
    pytest.importorskip('sole_r1_interfaces.msg')
    bag = tmp_path / 'bag'
    _write_bag(bag, [('ep-a', 3)])
    labels = tmp_path / 'labels.json'
    labels.write_text(text)
    assert main(['finetune', 'prepare', '--bag', str(bag), '--labels', str(labels),
                 '--out', str(tmp_path / 'd')]) == 2
    assert message in capsys.readouterr().err


# ---------------------------------------------------------------- old synth exports
def test_an_old_synth_export_is_refused_with_what_to_do(tmp_path):
    (tmp_path / 'export.json').write_text(json.dumps({'format': 'sole_r1_sft', 'version': 1}))
    (tmp_path / 'examples.jsonl').write_text('')
    with pytest.raises(ValueError, match='export again with sole-r1 synth'):
        examples.read_examples(str(tmp_path))


def test_labelled_frames_npz_episode_prepares_like_a_video_one(tmp_path):
    from sole_r1_ros import labelled

    frames = _frames(6, 1)
    labelled.write_episode(str(tmp_path / 'robot'), labelled.LabelledEpisode(
        'a', 'Close the drawer.', [0, 5, 20, 40, 70, 95], frames))
    out = tmp_path / 'data'
    assert main(['finetune', 'prepare', '--episodes', str(tmp_path / 'robot'), '--out', str(out),
                 '--num-queries', '2']) == 0
    loaded = examples.read_examples(str(out))
    assert [(x.step, x.progress) for x in loaded] == [(2, 20), (5, 95)]
    assert all(x.external_only for x in loaded)
    from PIL import Image
    expected = protocol.build_composite(frames[0], frames[2], frames[5])
    assert np.array_equal(np.asarray(Image.open(out / loaded[1].image)), expected)

"""Bags read back: whole ones, and what a killed recorder leaves (no metadata.yaml, torn MCAP)."""
import os
import shutil

import numpy as np
import pytest

pytest.importorskip('rosbags')

from sole_r1_ros.recording import BagWriter, make_typestore, read_camera_episodes  # noqa: E402


def _image(typestore, frame, sec):
    types = typestore.types
    header = types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](sec=sec, nanosec=0), frame_id='cam')
    height, width = frame.shape[:2]
    return types['sensor_msgs/msg/Image'](
        header=header, height=height, width=width, encoding='rgb8', is_bigendian=0,
        step=width * 3, data=frame.reshape(-1))


def _record(path, frames, close=True):
    """A bag of one episode's external frames; unclosed: the state a killed recorder leaves."""
    typestore = make_typestore()
    writer = BagWriter(path)
    for index, frame in enumerate(frames):
        raw = typestore.serialize_cdr(_image(typestore, frame, index + 1),
                                      'sensor_msgs/msg/Image')
        writer.write('/camera/external/image_raw', 'sensor_msgs/msg/Image',
                     (index + 1) * 10**9, bytes(raw))
    return writer if not close else writer.close()


def _frames(count):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (120, 160, 3), dtype=np.uint8) for _ in range(count)]


def test_a_camera_clock_that_goes_back_is_refused_not_dealt_in_between(tmp_path):
    """A camera restarted mid-recording with its own clock: its frames sorted by stamp.

    They came out 14, 15, 30, 16, 31, ... and every label went to that order, unsaid.
    """
    typestore = make_typestore()
    writer = BagWriter(tmp_path / 'bag')
    frames = _frames(12)
    for index, frame in enumerate(frames):
        sec = index + 1 if index < 6 else index - 3   # back 3 s at the 7th frame
        raw = typestore.serialize_cdr(_image(typestore, frame, sec), 'sensor_msgs/msg/Image')
        writer.write('/camera/external/image_raw', 'sensor_msgs/msg/Image',
                     (index + 1) * 10**9, bytes(raw))
    writer.close()
    with pytest.raises(ValueError, match='go back 3.0 s at its frame 6'):
        read_camera_episodes(tmp_path / 'bag', 'camera/external/image_raw')


def test_a_whole_bag_reads_every_frame(tmp_path):
    frames = _frames(5)
    _record(tmp_path / 'bag', frames)
    notes = []
    [episode] = read_camera_episodes(tmp_path / 'bag', 'camera/external/image_raw',
                                     notes=notes)
    assert len(episode.external) == 5 and np.array_equal(episode.external[3], frames[3])
    assert notes == []


def test_a_killed_recorder_leaves_frames_that_are_recovered_and_counted(tmp_path):
    frames = _frames(40)  # ~2.3 MB: rosbags has flushed two 1 MiB chunks to disk
    writer = _record(tmp_path / 'live', frames, close=False)
    shutil.copytree(tmp_path / 'live', tmp_path / 'killed')  # what is on disk right now
    writer.close()
    assert not (tmp_path / 'killed' / 'metadata.yaml').exists()
    notes = []
    [episode] = read_camera_episodes(tmp_path / 'killed', 'camera/external/image_raw',
                                     notes=notes)
    assert 10 <= len(episode.external) < 40
    assert np.array_equal(episode.external[0], frames[0])
    assert any('no metadata.yaml' in n for n in notes)
    assert any(f'{len(episode.external)} messages recovered' in n for n in notes), notes


def test_a_truncated_mcap_is_read_up_to_the_torn_record(tmp_path):
    frames = _frames(40)
    _record(tmp_path / 'bag', frames)
    [mcap] = list((tmp_path / 'bag').glob('*.mcap'))
    data = mcap.read_bytes()
    mcap.write_bytes(data[:len(data) * 2 // 3])  # cut inside the second chunk
    notes = []
    [episode] = read_camera_episodes(tmp_path / 'bag', 'camera/external/image_raw',
                                     notes=notes)
    assert 10 <= len(episode.external) < 40
    assert any('rosbags cannot read it' in n for n in notes)
    assert any('damaged or cut off' in n for n in notes), notes


def _chunk_offsets(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each top-level chunk record of an MCAP file's bytes."""
    import struct
    chunks, position = [], 8
    while position < len(data) and data[position] != 0x0F:
        (length,) = struct.unpack_from('<Q', data, position + 1)
        if data[position] == 0x06:
            chunks.append((position, position + 9 + length))
        position += 9 + length
    return chunks


@pytest.mark.parametrize('tail', [b'\xff' * 4096, bytes(np.random.default_rng(3).integers(
    0, 256, 4096, dtype=np.uint8))])
def test_a_bag_cut_and_followed_by_garbage_gives_back_what_came_before(tmp_path, tail):
    """A power loss or a bad card: garbage after a cut read a length of exabytes.

    MemoryError or OverflowError, and nothing of the bag came back.
    """
    _record(tmp_path / 'bag', _frames(40))
    [mcap] = list((tmp_path / 'bag').glob('*.mcap'))
    data = mcap.read_bytes()
    cut = _chunk_offsets(data)[1][1]   # where a record would begin: garbage read as one
    mcap.write_bytes(data[:cut] + tail)
    notes = []
    [episode] = read_camera_episodes(tmp_path / 'bag', 'camera/external/image_raw',
                                     notes=notes)
    assert 5 <= len(episode.external) < 40
    assert any('damaged or cut off' in n for n in notes), notes


def test_a_chunk_damaged_inside_is_skipped_and_the_chunks_after_it_are_read(tmp_path):
    """A bit flip inside one chunk ended the scan of the whole file there."""
    frames = _frames(40)
    _record(tmp_path / 'bag', frames)
    [mcap] = list((tmp_path / 'bag').glob('*.mcap'))
    data = bytearray(mcap.read_bytes())
    chunks = _chunk_offsets(bytes(data))
    assert len(chunks) >= 3
    start, end = chunks[1]
    data[start + 9 + 28 + 4 + 8: start + 9 + 28 + 4 + 8 + 64] = b'\xff' * 64   # its records
    mcap.write_bytes(bytes(data))
    (tmp_path / 'bag' / 'metadata.yaml').unlink()   # read by the scan, as after a kill
    notes = []
    [episode] = read_camera_episodes(tmp_path / 'bag', 'camera/external/image_raw',
                                     notes=notes)
    assert np.array_equal(episode.external[-1], frames[-1])   # the last chunk's frames came back
    assert len(episode.external) < 40
    assert any('chunk(s) damaged inside were skipped' in n for n in notes), notes


@pytest.fixture
def killed_bag(tmp_path):
    writer = _record(tmp_path / 'live', _frames(40), close=False)
    shutil.copytree(tmp_path / 'live', tmp_path / 'killed')
    writer.close()
    return tmp_path / 'killed'


def test_score_bag_scores_what_a_killed_recording_holds_and_says_what_was_lost(
        killed_bag, tmp_path, capsys):
    pytest.importorskip('torch')
    import json

    from sole_r1_ros.cli import main
    out = tmp_path / 'scores.json'
    assert main(['score-bag', str(killed_bag), '--goal', 'close the drawer', '--backend',
                 'compact', '--wrist-topic', '', '--out', str(out),
                 '--labelled-out', str(tmp_path / 'distil')]) == 0
    err = capsys.readouterr().err
    assert 'no metadata.yaml' in err and 'messages recovered' in err
    report = json.loads(out.read_text())
    assert report['episodes'][0]['num_frames'] >= 10
    assert any('what it still held in memory is lost' in n for n in report['recovery'])
    from sole_r1_ros import labelled  # the scores as distillation data
    [episode] = labelled.load_episodes(str(tmp_path / 'distil'))
    assert episode.num_frames == report['episodes'][0]['num_frames']
    assert list(episode.progress) == pytest.approx(report['episodes'][0]['progress'], abs=1e-3)
    assert episode.meta['source'].startswith('sole-r1 score-bag (compact')


def test_finetune_prepare_reads_a_killed_recording(killed_bag, tmp_path):
    import json

    from sole_r1_ros.cli import main
    from sole_r1_ros.finetune.examples import read_examples
    labels = tmp_path / 'labels.json'
    labels.write_text(json.dumps({'task': 'close the drawer', 'episodes': {
        'episode-0': {'time_s': [0, 30], 'progress': [0, 100]}}}))
    assert main(['finetune', 'prepare', '--bag', str(killed_bag), '--labels', str(labels),
                 '--wrist-topic', '', '--num-queries', '3', '--out', str(tmp_path / 'd')]) == 0
    assert len(read_examples(str(tmp_path / 'd'))) == 3


def _score_bag(bag, tmp_path, labelled_out):
    from sole_r1_ros.cli import main
    return main(['score-bag', str(bag), '--goal', 'close the drawer', '--backend', 'compact',
                 '--wrist-topic', '', '--out', str(tmp_path / 'scores.json'),
                 '--labelled-out', str(labelled_out)])


def test_bags_without_episode_marks_keep_their_own_labelled_episodes(tmp_path, capsys):
    """Two recordings scored into one folder: neither replaces the other without a word."""
    pytest.importorskip('torch')
    from sole_r1_ros import labelled
    for name in ('a', 'b'):
        _record(tmp_path / name, _frames(4))
    distil = tmp_path / 'distil'
    assert _score_bag(tmp_path / 'a', tmp_path, distil) == 0
    assert "no 'episode' messages: all of it is one episode" in capsys.readouterr().err
    assert _score_bag(tmp_path / 'b', tmp_path, distil) == 0
    assert sorted(e.episode_id for e in labelled.load_episodes(str(distil))) == [
        'a-episode-0', 'b-episode-0']
    assert _score_bag(tmp_path / 'a', tmp_path, distil) == 0     # scored again: replaced
    shutil.copytree(tmp_path / 'a', tmp_path / 'other' / 'a')    # another recording, same name
    capsys.readouterr()
    assert _score_bag(tmp_path / 'other' / 'a', tmp_path, distil) == 2
    assert "already holds episode 'a-episode-0'" in capsys.readouterr().err
    assert len(labelled.load_episodes(str(distil))) == 2
    # the bag as typed from elsewhere: a relative path names another recording there
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        assert _score_bag('a', tmp_path, distil) == 0             # itself: replaced
        os.chdir(tmp_path / 'other')
        capsys.readouterr()
        assert _score_bag('a', tmp_path, distil) == 2             # other/a: refused
        assert "already holds episode 'a-episode-0'" in capsys.readouterr().err
    finally:
        os.chdir(cwd)


def test_an_interrupted_score_bag_resumes_asking_only_the_rest(tmp_path, monkeypatch, capsys):
    """Ctrl-C in a scoring lost every answer: no episode finishes before the last round."""
    pytest.importorskip('torch')
    import json
    from interrupted_scoring import check_resumes
    from sole_r1_ros.cli import main
    _record(tmp_path / 'bag', _frames(12))
    out = tmp_path / 'scores.json'
    args = ['score-bag', str(tmp_path / 'bag'), '--goal', 'close the drawer', '--backend',
            'compact', '--wrist-topic', '', '--num-queries', '6', '--out', str(out)]
    check_resumes(args, out, lambda path: [
        q['progress'] for q in json.loads(path.read_text())['episodes'][0]['queries']],
        monkeypatch, capsys)
    journal = tmp_path / 'scores.json.answers.jsonl'
    # a journal of another scoring is refused, not mixed in
    journal.write_text(json.dumps({'journal': {'goal': 'open the drawer'}}) + '\n')
    assert main(args) == 2
    assert 'holds the answers of another scoring' in capsys.readouterr().err


def test_a_stop_while_the_labelled_folder_is_written_keeps_the_answers(
        tmp_path, monkeypatch, capsys):
    """The journal went before the labelled folder was written: a stop there lost every answer.

    Writing the folder decodes the bag again and encodes videos, a long bag's slow tail; the
    rerun asked every query again.
    """
    pytest.importorskip('torch')
    from sole_r1_ros.cli import main
    from sole_r1_ros.commands import score_bag
    _record(tmp_path / 'bag', _frames(12))
    out = tmp_path / 'scores.json'
    args = ['score-bag', str(tmp_path / 'bag'), '--goal', 'close the drawer', '--backend',
            'compact', '--wrist-topic', '', '--num-queries', '6', '--out', str(out),
            '--labelled-out', str(tmp_path / 'labelled')]
    write = score_bag._write_labelled

    def stopped(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(score_bag, '_write_labelled', stopped)
    assert main(args) != 0
    journal = tmp_path / 'scores.json.answers.jsonl'
    assert journal.exists()
    monkeypatch.setattr(score_bag, '_write_labelled', write)
    capsys.readouterr()
    assert main(args) == 0
    assert 'from an interrupted run' in capsys.readouterr().err
    assert not journal.exists() and (tmp_path / 'labelled' / 'episodes').is_dir()


def test_frames_before_the_first_episode_are_not_scored(tmp_path, capsys):
    """A learner's bag starts before its first episode: those frames belong to none."""
    pytest.importorskip('torch')
    from sole_r1_ros import labelled
    typestore = make_typestore()
    types = typestore.types
    writer = _record(tmp_path / 'bag', _frames(7), close=False)
    for sec, episode_id in ((3, 'episode-1a2b3c4d'), (5, 'episode-5e6f7a8b')):
        start = types['sole_r1_interfaces/msg/Episode'](
            header=types['std_msgs/msg/Header'](
                stamp=types['builtin_interfaces/msg/Time'](sec=sec, nanosec=0), frame_id=''),
            episode_id=episode_id, evaluation=False)
        writer.write('/episode', 'sole_r1_interfaces/msg/Episode', sec * 10**9,
                     bytes(typestore.serialize_cdr(start, 'sole_r1_interfaces/msg/Episode')))
    writer.close()
    assert _score_bag(tmp_path / 'bag', tmp_path, tmp_path / 'distil') == 0
    assert '2 frames before the first episode began are not scored' in capsys.readouterr().err
    assert {e.episode_id: e.num_frames for e in labelled.load_episodes(
        str(tmp_path / 'distil'))} == {'episode-1a2b3c4d': 2, 'episode-5e6f7a8b': 3}


def test_a_camera_topic_the_bag_lacks_is_named_with_the_ones_it_has(tmp_path):
    _record(tmp_path / 'bag', _frames(2))
    with pytest.raises(ValueError, match="no readable messages on 'cam_ext/color/image_raw'; "
                       'its image topics: /camera/external/image_raw'):
        read_camera_episodes(tmp_path / 'bag', 'cam_ext/color/image_raw')
    with pytest.raises(ValueError, match="no readable messages on 'cam/wrist'; "
                       'its image topics: /camera/external/image_raw'):
        read_camera_episodes(tmp_path / 'bag', 'camera/external/image_raw', 'cam/wrist')


def test_a_recorder_killed_early_leaves_what_it_wrote_a_second_ago(tmp_path):
    """Before, rosbags held the first 1 MiB (header included) in memory: a 0-byte bag."""
    frames = [np.full((8, 8, 3), value, np.uint8) for value in (10, 20, 30)]
    typestore = make_typestore()
    writer = BagWriter(tmp_path / 'live', flush_every_s=0.0)
    for index, frame in enumerate(frames):
        raw = typestore.serialize_cdr(_image(typestore, frame, index + 1),
                                      'sensor_msgs/msg/Image')
        writer.write('/camera/external/image_raw', 'sensor_msgs/msg/Image',
                     (index + 1) * 10**9, bytes(raw))
    shutil.copytree(tmp_path / 'live', tmp_path / 'killed')   # SIGKILL now
    writer.close()
    [episode] = read_camera_episodes(tmp_path / 'killed', 'camera/external/image_raw')
    assert [int(f[0, 0, 0]) for f in episode.external] == [10, 20, 30]


_DISK_FULL = '''
import resource, sys
from sole_r1_ros.recording import BagWriter, make_typestore
typestore = make_typestore()
types = typestore.types
stamp = types['builtin_interfaces/msg/Time'](sec=1, nanosec=0)
image = types['sensor_msgs/msg/Image'](
    header=types['std_msgs/msg/Header'](stamp=stamp, frame_id='cam'),
    height=40, width=80, encoding='rgb8', is_bigendian=0, step=240,
    data=__import__('numpy').zeros(9600, 'uint8'))
raw = bytes(typestore.serialize_cdr(image, 'sensor_msgs/msg/Image'))
writer = BagWriter(sys.argv[1], flush_every_s=0.0)
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.RLIM_INFINITY))  # a full disk
errors = []
for index in range(60):
    try:
        writer.write('/data', 'sensor_msgs/msg/Image', index, raw)
    except OSError as exc:
        errors.append(str(exc))
writer.close()
print(writer.count, len(errors), errors[-1])
'''


def test_a_full_disk_stops_the_bag_says_so_and_keeps_what_was_written(tmp_path):
    """Before, rosbags kept the failed chunk and grew it with every later message."""
    import subprocess
    import sys
    done = subprocess.run([sys.executable, '-c', _DISK_FULL, str(tmp_path / 'bag')],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    count, errors, last = done.stdout.strip().split(' ', 2)
    assert 5 < int(count) < 30 and int(count) + int(errors) == 60
    assert last.startswith(f'the bag stopped after {count} messages: OSError')
    from sole_r1_ros.recording import read_topics
    notes = []
    written = read_topics(tmp_path / 'bag', ['data'], notes)['data']
    assert int(count) - 1 <= len(written) <= int(count)


_FULL_THEN_ROOM = '''
import resource, signal, sys
from sole_r1_ros.recording import make_typestore
from sole_r1_ros.recording.guarded import GuardedBag
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
typestore = make_typestore()
types = typestore.types
image = types['sensor_msgs/msg/Image'](
    header=types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](sec=1, nanosec=0), frame_id='cam'),
    height=40, width=80, encoding='rgb8', is_bigendian=0, step=240,
    data=__import__('numpy').zeros(9600, 'uint8'))
raw = bytes(typestore.serialize_cdr(image, 'sensor_msgs/msg/Image'))
bag = GuardedBag(sys.argv[1], min_free_bytes=0, check_every_s=0.0)
bag._writer._flush_every_s = 0.0
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.RLIM_INFINITY))  # a full disk
for index in range(40):
    bag.write('/data', 'sensor_msgs/msg/Image', index, raw)
stopped, dropped = bag.stopped, bag.dropped
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
bag.tick()                          # room again: a new part
for index in range(40, 50):
    bag.write('/data', 'sensor_msgs/msg/Image', index, raw)
bag.close()
print(bag.count, dropped, len(bag.parts), stopped)
'''


def test_a_bag_stopped_by_a_full_disk_goes_on_in_a_new_part(tmp_path):
    """At the first ENOSPC the bag stopped for good, and nothing said so."""
    import subprocess
    import sys

    from sole_r1_ros.recording import read_topics
    done = subprocess.run([sys.executable, '-c', _FULL_THEN_ROOM, str(tmp_path / 'bag')],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    count, dropped, parts, stopped = done.stdout.strip().split(' ', 3)
    assert int(parts) == 2 and stopped.startswith('a write failed')
    assert int(count) + int(dropped) == 50 and int(dropped) > 0
    first = read_topics(tmp_path / 'bag', ['data'])['data']
    second = read_topics(tmp_path / 'bag-part2', ['data'])['data']
    assert len(second) == 10 and int(count) - 1 <= len(first) + len(second) <= int(count)


def test_a_bag_stops_whole_under_its_free_space_reserve_and_goes_on_above_twice_it(tmp_path):
    """Checkpoints keep their room: the bag, the largest writer, stops first, readable."""
    from sole_r1_ros.recording import read_topics
    from sole_r1_ros.recording.guarded import GuardedBag
    typestore = make_typestore()
    free = [10 * 10**9]
    bag = GuardedBag(tmp_path / 'bag', min_free_bytes=10**9, free_bytes=lambda folder: free[0],
                     check_every_s=0.0)

    def write(sec):
        raw = typestore.serialize_cdr(_image(typestore, _frames(1)[0], sec),
                                      'sensor_msgs/msg/Image')
        bag.write('/camera/external/image_raw', 'sensor_msgs/msg/Image', sec * 10**9, bytes(raw))
    for sec in (1, 2):
        write(sec)
    free[0] = 5 * 10**8
    bag.tick()
    assert bag.stopped.startswith('0.50 GB free on its disk, under the 1 GB kept')
    assert (tmp_path / 'bag' / 'metadata.yaml').is_file()     # closed whole
    write(3)
    free[0] = 15 * 10**8
    bag.tick()                                                # above the reserve, under twice
    write(4)
    free[0] = 2 * 10**9
    bag.tick()
    assert not bag.stopped and bag.path == tmp_path / 'bag-part2'
    write(5)
    bag.close()
    assert (bag.count, bag.dropped) == (3, 2)
    assert [s // 10**9 for s, _ in read_topics(tmp_path / 'bag', ['camera/external/image_raw'])[
        'camera/external/image_raw']] == [1, 2]
    assert [s // 10**9 for s, _ in read_topics(
        tmp_path / 'bag-part2', ['camera/external/image_raw'])['camera/external/image_raw']] == [5]


def test_a_topic_of_another_message_type_is_refused_with_its_type(tmp_path):
    """A compressed camera topic, or a wrong --episode-topic, failed inside the decoding."""
    typestore = make_typestore()
    types = typestore.types
    writer = BagWriter(tmp_path / 'bag')
    header = types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](sec=1, nanosec=0), frame_id='cam')
    compressed = types['sensor_msgs/msg/CompressedImage'](
        header=header, format='jpeg', data=np.zeros(4, np.uint8))
    writer.write('/camera/external/image_raw', 'sensor_msgs/msg/CompressedImage', 10**9,
                 bytes(typestore.serialize_cdr(compressed, 'sensor_msgs/msg/CompressedImage')))
    raw = typestore.serialize_cdr(_image(typestore, _frames(1)[0], 1), 'sensor_msgs/msg/Image')
    writer.write('/camera/wrist/image_raw', 'sensor_msgs/msg/Image', 10**9, bytes(raw))
    writer.close()
    with pytest.raises(ValueError, match='holds sensor_msgs/msg/CompressedImage messages, not '
                                         'sensor_msgs/msg/Image: give the raw image topic'):
        read_camera_episodes(tmp_path / 'bag', 'camera/external/image_raw')
    with pytest.raises(ValueError, match='camera/wrist/image_raw in .* holds '
                                         'sensor_msgs/msg/Image messages, not '
                                         'sole_r1_interfaces/msg/Episode'):
        read_camera_episodes(tmp_path / 'bag', 'camera/wrist/image_raw',
                             episode_topic='camera/wrist/image_raw')


def _bag_with(path, external_secs, wrist_secs=(), episodes=()):
    """A bag of external (and wrist) frames at the given seconds, and Episode marks."""
    typestore = make_typestore()
    writer = BagWriter(path)
    frame = _frames(1)[0]
    for topic, secs in (('/camera/external/image_raw', external_secs),
                        ('/camera/wrist/image_raw', wrist_secs)):
        for sec in secs:
            raw = typestore.serialize_cdr(_image(typestore, frame, sec), 'sensor_msgs/msg/Image')
            writer.write(topic, 'sensor_msgs/msg/Image', sec * 10**9, bytes(raw))
    types = typestore.types
    for sec, name in episodes:
        header = types['std_msgs/msg/Header'](
            stamp=types['builtin_interfaces/msg/Time'](sec=sec, nanosec=0), frame_id='')
        msg = types['sole_r1_interfaces/msg/Episode'](
            header=header, episode_id=name, evaluation=False)
        writer.write('/episode', 'sole_r1_interfaces/msg/Episode', sec * 10**9,
                     bytes(typestore.serialize_cdr(msg, 'sole_r1_interfaces/msg/Episode')))
    writer.close()


def test_external_frames_without_a_wrist_partner_are_counted_in_the_notes(tmp_path):
    """A wrist camera at half the rate left half the frames out without a word."""
    _bag_with(tmp_path / 'bag', range(1, 11), range(1, 11, 2))
    notes = []
    [episode] = read_camera_episodes(tmp_path / 'bag', 'camera/external/image_raw',
                                     'camera/wrist/image_raw', notes=notes)
    assert len(episode.external) == 5
    assert any('5 of 10 external frames have no wrist frame within 20 ms' in n for n in notes)


def test_score_bag_refuses_a_bag_with_an_episode_id_twice(tmp_path, capsys):
    """The second episode of an id wrote over the first, and their answers mixed."""
    from sole_r1_ros.cli import main
    _bag_with(tmp_path / 'bag', range(1, 13), episodes=((1, 'a'), (5, 'b'), (9, 'a')))
    assert main(['score-bag', str(tmp_path / 'bag'), '--goal', 'close the drawer',
                 '--backend', 'compact', '--wrist-topic', '',
                 '--out', str(tmp_path / 's.json')]) == 2
    assert "episode 'a' appears twice" in capsys.readouterr().err


def test_frames_without_their_own_stamps_are_refused(tmp_path):
    """Stamped 0, they joined the episodes into one and all paired with one wrist frame."""
    _bag_with(tmp_path / 'bag', [0] * 10, [0] * 10, episodes=((0, 'a'),))
    with pytest.raises(ValueError, match="9 of the 10 frames on 'camera/external/image_raw' "
                                         'repeat the header stamp'):
        read_camera_episodes(tmp_path / 'bag', 'camera/external/image_raw',
                             'camera/wrist/image_raw')


def _two_view_bag(path, count, episodes):
    """A bag of ``count`` distinct frames a second apart on both views (the wrist's flipped).

    96x128 frames: a labelled folder keeps them lossless.
    """
    typestore = make_typestore()
    types = typestore.types
    frames = [f[:96, :128].copy() for f in _frames(count)]
    writer = BagWriter(path)
    for index, frame in enumerate(frames):
        for view, picture in (('external', frame), ('wrist', frame[::-1].copy())):
            raw = typestore.serialize_cdr(_image(typestore, picture, index + 1),
                                          'sensor_msgs/msg/Image')
            writer.write(f'/camera/{view}/image_raw', 'sensor_msgs/msg/Image',
                         (index + 1) * 10**9, bytes(raw))
    for sec, name in episodes:
        msg = types['sole_r1_interfaces/msg/Episode'](header=types['std_msgs/msg/Header'](
            stamp=types['builtin_interfaces/msg/Time'](sec=sec, nanosec=0), frame_id=''),
            episode_id=name, evaluation=False)
        writer.write('/episode', 'sole_r1_interfaces/msg/Episode', sec * 10**9,
                     bytes(typestore.serialize_cdr(msg, 'sole_r1_interfaces/msg/Episode')))
    writer.close()
    return frames


def test_score_bag_decodes_only_the_frames_it_shows_and_writes_episodes_whole(
        tmp_path, monkeypatch):
    """Every frame of a bag was decoded and held at once: 1.7 GB to score a 0.9 GB bag."""
    pytest.importorskip('torch')
    from sole_r1_ros import labelled
    from sole_r1_ros.cli import main
    from sole_r1_ros.recording import bag
    frames = _two_view_bag(tmp_path / 'bag', 24, ((1, 'a'), (13, 'b')))
    decoded, real = [], bag.image_to_rgb
    monkeypatch.setattr(bag, 'image_to_rgb',
                        lambda msg, **kw: decoded.append(msg) or real(msg, **kw))
    args = ['score-bag', str(tmp_path / 'bag'), '--goal', 'close the drawer', '--backend',
            'compact', '--num-queries', '3', '--out', str(tmp_path / 's.json')]
    assert main(args) == 0
    assert len(decoded) == 2 * 4 * 2     # two episodes: frame 0 and 3 queries, two views
    decoded.clear()
    assert main(args + ['--labelled-out', str(tmp_path / 'distil')]) == 0
    assert len(decoded) == 2 * 4 * 2 + 24 * 2     # then every frame once, to write it
    written = {e.episode_id: e for e in labelled.load_episodes(str(tmp_path / 'distil'))}
    for name, part in (('a', frames[:12]), ('b', frames[12:])):
        episode = written[name]
        assert episode.num_frames == 12
        assert all(np.array_equal(episode.external[i], part[i]) for i in range(12))
        assert all(np.array_equal(episode.wrist[i], part[i][::-1]) for i in range(12))


def test_a_bag_rosbags_fails_on_midway_is_read_once_from_the_scan(tmp_path):
    """Read one message at a time, what rosbags gave before failing is not given twice."""
    import struct
    frames = _frames(40)
    _record(tmp_path / 'bag', frames)
    [mcap] = list((tmp_path / 'bag').glob('*.mcap'))
    data = bytearray(mcap.read_bytes())
    position, chunks = 8, []
    while data[position] != 0x0F:    # the top-level records, to the data end
        (length,) = struct.unpack_from('<Q', data, position + 1)
        chunks += [position] if data[position] == 0x06 else []
        position += 9 + length
    body = chunks[2] + 9             # the third chunk: its first record claims 1 TB
    (name_length,) = struct.unpack_from('<I', data, body + 28)
    struct.pack_into('<Q', data, body + 28 + 4 + name_length + 8 + 1, 10**12)
    mcap.write_bytes(bytes(data))
    notes = []
    [episode] = read_camera_episodes(tmp_path / 'bag', 'camera/external/image_raw',
                                     notes=notes)
    assert any('rosbags cannot read it (Truncated record' in n for n in notes), notes
    assert 30 <= len(episode.external) < 40
    assert episode.stamps_ns == [(i + 1) * 10**9 for i in range(len(episode.external))]
    assert all(np.array_equal(f, frames[i]) for i, f in enumerate(episode.external))


def test_score_bag_scores_a_few_episodes_at_a_time_as_the_bag_is_read(tmp_path, monkeypatch):
    """Every episode's shown frames were decoded before the first query: 7 GB for an hour.

    With ``--episodes-at-once 2``, each batch of two is scored before the next is decoded,
    and the answers are those of scoring all six together.
    """
    pytest.importorskip('torch')
    import json
    from sole_r1_ros.cli import main
    from sole_r1_ros.commands import score_bag
    from sole_r1_ros.recording import bag
    _two_view_bag(tmp_path / 'bag', 24, [(1 + 4 * i, f'e{i}') for i in range(6)])
    decoded, real = [], bag.image_to_rgb
    monkeypatch.setattr(bag, 'image_to_rgb',
                        lambda msg, **kw: decoded.append(msg) or real(msg, **kw))
    calls, scoring = [], score_bag.score_episodes
    monkeypatch.setattr(score_bag, 'score_episodes', lambda engine, episodes, **kw: (
        calls.append((len(episodes), len(decoded))) or scoring(engine, episodes, **kw)))
    args = ['score-bag', str(tmp_path / 'bag'), '--goal', 'close the drawer', '--backend',
            'compact', '--num-queries', '2']
    assert main(args + ['--out', str(tmp_path / 'all.json')]) == 0
    assert calls == [(6, 6 * 3 * 2)]             # frame 0 and 2 queries, two views
    calls.clear(), decoded.clear()
    assert main(args + ['--out', str(tmp_path / 'two.json'), '--episodes-at-once', '2']) == 0
    # the next episode's first frame may be decoded before a batch is whole, no more
    assert [n for n, _ in calls] == [2, 2, 2]
    assert all(seen <= 2 * (k + 1) * 6 + 2 for k, (_, seen) in enumerate(calls)), calls

    def progress(name: str) -> list:
        return [e['progress'] for e in json.loads((tmp_path / name).read_text())['episodes']]
    assert progress('two.json') == progress('all.json')
    calls.clear()                                # a memory budget of one episode's frames
    one_episode_gb = 3 * 2 * 96 * 128 * 3 / 1e9
    assert main(args + ['--out', str(tmp_path / 'one.json'), '--frames-memory-gb',
                        str(one_episode_gb)]) == 0
    assert [n for n, _ in calls] == [1] * 6 and progress('one.json') == progress('all.json')


def test_two_robots_topics_under_one_relative_name_are_refused_not_merged(tmp_path, capsys):
    """Matched by their last components, two robots' cameras were read as one stream."""
    from sole_r1_ros.cli import main
    from sole_r1_ros.recording import read_topics
    typestore = make_typestore()
    writer = BagWriter(tmp_path / 'bag')
    for sec in range(1, 5):
        for robot, frame in (('robot1', _frames(1)[0]), ('robot2', _frames(2)[1])):
            raw = typestore.serialize_cdr(_image(typestore, frame, sec), 'sensor_msgs/msg/Image')
            writer.write(f'/{robot}/camera/external/image_raw', 'sensor_msgs/msg/Image',
                         sec * 10**9, bytes(raw))
    writer.close()
    with pytest.raises(ValueError, match='both /robot1/camera/external/image_raw and '
                       '/robot2/camera/external/image_raw match'):
        read_topics(tmp_path / 'bag', ['camera/external/image_raw'])
    read = read_topics(tmp_path / 'bag', ['/robot2/camera/external/image_raw',
                                          'robot1/camera/external/image_raw'])
    assert [len(v) for v in read.values()] == [4, 4]     # the full name, or enough of it
    assert main(['score-bag', str(tmp_path / 'bag'), '--goal', 'close the drawer',
                 '--wrist-topic', '', '--out', str(tmp_path / 's.json')]) == 2
    assert 'give the full name' in capsys.readouterr().err


def test_a_vendor_message_type_is_learnt_from_its_installed_msg_file(tmp_path, monkeypatch):
    """The bag learns a vendor type: rosbags knows core packages only (Servo's JointJog)."""
    from rosbags.rosbag2 import Reader

    from sole_r1_ros.recording import learn_installed_type
    share = tmp_path / 'prefix' / 'share'
    (share / 'ament_index' / 'resource_index' / 'packages').mkdir(parents=True)
    (share / 'ament_index' / 'resource_index' / 'packages' / 'vendor_msgs').write_text('')
    (share / 'vendor_msgs' / 'msg').mkdir(parents=True)
    (share / 'vendor_msgs' / 'msg' / 'JointJog.msg').write_text(
        'std_msgs/Header header\nstring[] joint_names\nfloat64[] velocities\n'
        'vendor_msgs/Gain gain\n')
    (share / 'vendor_msgs' / 'msg' / 'Gain.msg').write_text('float64 value\n')
    monkeypatch.setenv('AMENT_PREFIX_PATH',
                       f"{tmp_path / 'prefix'}:{os.environ.get('AMENT_PREFIX_PATH', '')}")
    store = make_typestore()
    learn_installed_type(store, 'vendor_msgs/msg/JointJog')   # and the Gain it holds
    types = store.types
    header = types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](sec=1, nanosec=0), frame_id='')
    jog = types['vendor_msgs/msg/JointJog'](
        header=header, joint_names=['j1'], velocities=np.array([0.5]),
        gain=types['vendor_msgs/msg/Gain'](value=2.0))
    writer = BagWriter(tmp_path / 'bag')   # a typestore of its own: it learns the type too
    writer.write('/servo_node/joint_jog', 'vendor_msgs/msg/JointJog', 1,
                 bytes(store.serialize_cdr(jog, 'vendor_msgs/msg/JointJog')))
    writer.close()
    with Reader(tmp_path / 'bag') as reader:
        [connection] = reader.connections
        assert (connection.msgtype, connection.msgcount) == ('vendor_msgs/msg/JointJog', 1)
    with pytest.raises(ValueError, match='no nothere_msgs/msg/X.msg in the ament index'):
        learn_installed_type(store, 'nothere_msgs/msg/X')


def test_a_new_part_begins_with_the_running_episode(tmp_path):
    """The latched episode mark came once: part 2's frames of it had no episode."""
    from sole_r1_ros.recording import read_topics
    from sole_r1_ros.recording.guarded import GuardedBag
    typestore = make_typestore()
    types = typestore.types
    header = types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](sec=1, nanosec=0), frame_id='')
    mark = bytes(typestore.serialize_cdr(types['sole_r1_interfaces/msg/Episode'](
        header=header, episode_id='ep-a', evaluation=False), 'sole_r1_interfaces/msg/Episode'))
    free = {'bytes': 10**12}
    bag = GuardedBag(tmp_path / 'bag', min_free_bytes=10**9, check_every_s=0.0,
                     free_bytes=lambda folder: free['bytes'],
                     carried=lambda topic: topic.endswith('/episode'))
    bag.write('/episode', 'sole_r1_interfaces/msg/Episode', 1, mark)
    frame = typestore.serialize_cdr(_image(typestore, _frames(1)[0], 2), 'sensor_msgs/msg/Image')
    bag.write('/camera/external/image_raw', 'sensor_msgs/msg/Image', 2, bytes(frame))
    free['bytes'] = 0
    bag.tick()                                   # the disk fills: stopped
    free['bytes'] = 10**12
    bag.tick()                                   # room again: part 2
    bag.write('/camera/external/image_raw', 'sensor_msgs/msg/Image', 3, bytes(frame))
    bag.close()
    assert len(bag.parts) == 2
    part2 = read_topics(bag.parts[1], ['episode', 'camera/external/image_raw'], [])
    assert [m.episode_id for _, m in part2['episode']] == ['ep-a']
    assert len(part2['camera/external/image_raw']) == 1


def test_topics_a_bag_does_not_have_read_nothing_not_every_topic(tmp_path):
    """An empty filter reads every topic in rosbags: score-bag then raised on another type."""
    from sole_r1_ros.recording import read_topics
    from sole_r1_ros.recording.bag import _read_messages
    _record(tmp_path / 'bag', _frames(2))
    assert read_topics(tmp_path / 'bag', ['camera/wrist/robot_mask']) == {
        'camera/wrist/robot_mask': []}
    wanted = lambda topic: topic == '/camera/wrist/robot_mask'  # noqa: E731
    assert list(_read_messages(tmp_path / 'bag', make_typestore(), wanted, [])) == []

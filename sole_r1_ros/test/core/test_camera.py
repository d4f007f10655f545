"""Camera-node logic without ROS: stamp pairing, query schedule with events, tiles."""
import cv2
import numpy as np
import pytest

from sole_r1_ros.camera import (
    decode_tile, encode_tile, FramePairer, FrameThinner, QueryScheduleConfig, QueryScheduler,
    shrink_to_tile)

_MS = 1_000_000


def _frame(value: int) -> np.ndarray:
    return np.full((4, 4, 3), value, np.uint8)


def test_pairs_external_and_wrist_frames_by_nearest_stamp():
    pairer = FramePairer(use_wrist=True, max_skew_ns=5 * _MS)
    assert pairer.add_external(100 * _MS, _frame(1)) == []
    pairs = pairer.add_wrist(102 * _MS, _frame(2))
    assert len(pairs) == 1 and pairs[0].stamp_ns == 100 * _MS
    assert pairs[0].wrist[0, 0, 0] == 2 and pairs[0].external[0, 0, 0] == 1
    # wrist first, then external
    assert pairer.add_wrist(200 * _MS, _frame(3)) == []
    assert [p.stamp_ns for p in pairer.add_external(199 * _MS, _frame(4))] == [199 * _MS]


def test_external_frame_without_wrist_partner_is_dropped_not_mispaired():
    pairer = FramePairer(use_wrist=True, max_skew_ns=5 * _MS)
    pairer.add_external(100 * _MS, _frame(1))
    pairs = pairer.add_wrist(150 * _MS, _frame(2))   # far too late for frame 100
    assert pairs == [] and pairer.dropped == 1
    assert pairer.add_external(151 * _MS, _frame(3)) == []   # a nearer wrist frame may come
    (pair,) = pairer.add_wrist(184 * _MS, _frame(4))
    assert pair.stamp_ns == 151 * _MS and pair.wrist[0, 0, 0] == 2   # 150 was the nearest


@pytest.mark.parametrize('lost', ['wrist', 'external'])
def test_one_lost_frame_does_not_shift_every_later_pair(lost):
    """30 Hz cameras with one stamp, a 50 ms skew: one frame lost.

    Every later pair of the episode was a frame apart: the wrist frame used was let go with
    the ones before it.
    """
    pairer = FramePairer(use_wrist=True, max_skew_ns=50 * _MS)
    offsets = []
    for index in range(30):
        stamp = index * 33 * _MS
        for view in ('external', 'wrist'):
            if index == 10 and view == lost:
                continue
            pairs = (pairer.add_external(stamp, _frame(index % 200)) if view == 'external'
                     else pairer.add_wrist(stamp, _frame(index % 200)))
            offsets += [int(p.wrist[0, 0, 0]) - int(p.external[0, 0, 0]) for p in pairs]
    assert len(offsets) >= 28 and offsets[-15:] == [0] * 15


def test_frames_pushed_out_while_the_wrist_camera_is_silent_are_counted():
    pairer = FramePairer(use_wrist=True, max_skew_ns=5 * _MS, buffer=8)
    for index in range(10):
        assert pairer.add_external(100 * index * _MS, _frame(1)) == []
    assert pairer.dropped == 2


def test_without_wrist_every_external_frame_is_a_pair():
    pairer = FramePairer(use_wrist=False)
    (pair,) = pairer.add_external(5, _frame(1))
    assert pair.wrist is None and pairer.add_wrist(5, _frame(2)) == []


def test_stride_queries_and_step_zero_is_never_a_query():
    scheduler = QueryScheduler(QueryScheduleConfig(stride=5, min_gap=2))
    reasons = {step: scheduler.decide(step) for step in range(16)}
    assert [s for s, r in reasons.items() if r] == [5, 10, 15]
    assert reasons[0] is None and reasons[5] == 'stride'


def _joints(arm: float, gripper: float) -> dict[str, float]:
    return {'arm_1': arm, 'arm_2': 0.0, 'finger_l': gripper, 'finger_r': -gripper}


def test_gripper_closing_and_stopping_trigger_extra_queries():
    scheduler = QueryScheduler(QueryScheduleConfig(stride=100, min_gap=2,
                                                   gripper_joints=('finger_l', 'finger_r')))
    gripper = [0.04] * 5 + [0.03, 0.02, 0.01] + [0.01] * 5   # closes at 5..7, then holds
    reasons = [scheduler.decide(step, _joints(0.0, g)) for step, g in enumerate(gripper)]
    assert reasons[5] == 'gripper'    # started closing
    assert reasons[8] == 'gripper'    # stopped (contact / closed)
    assert sum(r is not None for r in reasons) == 2


def test_motion_jump_triggers_a_query_and_steady_motion_does_not():
    scheduler = QueryScheduler(QueryScheduleConfig(stride=100, min_gap=2,
                                                   motion_jump_threshold=0.05))
    arm = [0.1 * s for s in range(8)] + [0.7] * 4          # steady motion, then a sudden stop
    reasons = [scheduler.decide(step, _joints(a, 0.0)) for step, a in enumerate(arm)]
    assert reasons[:8] == [None] * 8
    assert reasons[8] == 'motion'


def test_events_can_be_capped_between_two_stride_queries():
    """An exploring policy's jerky motion made an event of nearly every frame.

    A query every min_gap frames, five times the stride's, saturated a SOLE-R1 server.
    """
    jerky = [0.3 * (step % 2) for step in range(40)]          # the arm flips every frame

    def queries(cap):
        scheduler = QueryScheduler(QueryScheduleConfig(stride=10, min_gap=2,
                                                       max_events_per_stride=cap))
        decided = [scheduler.decide(step, _joints(a, 0.0)) for step, a in enumerate(jerky)]
        return [reason for reason in decided if reason]
    assert len(queries(0)) >= 15                             # no limit: every second frame
    capped = queries(1)
    assert capped.count('stride') == 3 and capped.count('motion') <= 4 and len(capped) <= 8


def test_event_inside_min_gap_is_deferred_not_lost():
    scheduler = QueryScheduler(QueryScheduleConfig(stride=4, min_gap=3,
                                                   gripper_joints=('finger_l', 'finger_r')))
    gripper = [0.04] * 5 + [0.03] + [0.03] * 6     # starts moving at 5, one frame after a query
    reasons = [scheduler.decide(step, _joints(0.0, g)) for step, g in enumerate(gripper)]
    assert reasons[4] == 'stride'
    assert reasons[5] is None and reasons[6] is None   # inside min_gap
    assert reasons[7] == 'gripper'                     # deferred to the first allowed frame


def _kept(rate_hz: float, stamps_ms) -> list:
    thinner = FrameThinner(rate_hz)
    return [ms for ms in stamps_ms if thinner.keep(int(ms * 1e6))]


def test_a_30_hz_camera_is_thinned_to_the_control_rate():
    stamps = [1000 * k / 30 for k in range(90)]                  # 3 s at 30 Hz
    kept = _kept(10.0, stamps)
    assert len(kept) == 30 and np.allclose(np.diff(kept), 100.0, atol=0.01)


def test_a_camera_at_the_control_rate_with_jitter_keeps_every_frame():
    jitter = np.random.default_rng(0).uniform(-20, 20, 50)       # +-20 ms at 10 Hz
    stamps = [100 * k + j for k, j in enumerate(jitter)]
    assert _kept(10.0, stamps) == stamps


def test_a_15_hz_camera_keeps_about_the_control_rate_and_a_gap_makes_no_burst():
    stamps = [1000 * k / 15 for k in range(150)]                 # 10 s at 15 Hz
    assert 98 <= len(_kept(10.0, stamps)) <= 102
    at_30_hz = [1000 * k / 30 for k in range(30)]
    kept = _kept(10.0, at_30_hz + [2500 + ms for ms in at_30_hz])   # 1.5 s without frames
    assert kept[10] == 2500 and np.all(np.diff(kept) >= 99.9), kept


def test_rate_zero_keeps_every_frame_and_a_reset_keeps_the_next_first_frame():
    assert _kept(0.0, [0, 1, 2, 3]) == [0, 1, 2, 3]
    thinner = FrameThinner(10.0)
    assert thinner.keep(0) and not thinner.keep(10_000_000)
    thinner.reset()
    assert thinner.keep(20_000_000) and thinner.thinned == 1


@pytest.mark.parametrize('kwargs', [dict(stride=0), dict(stride=5, min_gap=6),
                                    dict(gripper_speed_threshold=-1),
                                    dict(frame_rate_hz=-10.0)])
def test_invalid_schedule_config_is_rejected(kwargs):
    with pytest.raises(ValueError):
        QueryScheduleConfig(**kwargs)


def test_shrunk_tile_matches_the_protocol_letterbox_resize():
    frame = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    tile = shrink_to_tile(frame)
    assert tile.shape == (288, 384, 3)
    expected = cv2.resize(frame, (int(640 * 384 / 640), int(480 * 384 / 640)),
                          interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(tile, expected)
    small = np.zeros((64, 64, 3), np.uint8)
    assert shrink_to_tile(small) is small


def test_png_tiles_are_lossless_and_jpeg_tiles_are_close():
    tile = np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode_tile(encode_tile(tile, 'png')), tile)
    smooth = cv2.GaussianBlur(tile, (9, 9), 3)
    assert np.abs(decode_tile(encode_tile(smooth, 'jpeg')).astype(int) - smooth).mean() < 4
    with pytest.raises(ValueError, match='not a decodable'):
        decode_tile(b'not an image')
    with pytest.raises(ValueError, match='not a decodable'):
        decode_tile(b'')

"""Image message <-> numpy conversion for every supported encoding and the malformed cases."""
from types import SimpleNamespace

import numpy as np
import pytest

from sole_r1_ros.image_msgs import (
    array_to_image, image_to_array, image_to_depth, image_to_rgb, ImageConversionError)


def _msg(array: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False):
    """A duck-typed Image (no ROS needed) with optional row padding and byte order."""
    array = np.ascontiguousarray(array)
    if bigendian:
        array = array.astype(array.dtype.newbyteorder('>'))
    rows = array.reshape(array.shape[0], -1).view(np.uint8)
    rows = np.concatenate([rows, np.full((rows.shape[0], pad), 0xAB, np.uint8)], axis=1)
    return SimpleNamespace(height=array.shape[0], width=array.shape[1], encoding=encoding,
                           is_bigendian=int(bigendian), step=rows.shape[1], data=rows.tobytes())


@pytest.mark.parametrize('encoding,dtype,channels', [
    ('rgb8', np.uint8, 3), ('bgr8', np.uint8, 3), ('rgba8', np.uint8, 4), ('bgra8', np.uint8, 4),
    ('mono8', np.uint8, 1), ('mono16', np.uint16, 1), ('16UC1', np.uint16, 1),
    ('32FC1', np.float32, 1)])
@pytest.mark.parametrize('pad', [0, 3])
@pytest.mark.parametrize('bigendian', [False, True])
def test_round_trip_every_encoding_with_padding_and_byte_order(
        encoding, dtype, channels, pad, bigendian):
    rng = np.random.default_rng(0)
    shape = (5, 7) if channels == 1 else (5, 7, channels)
    array = (rng.random(shape) * 200).astype(dtype)
    out = image_to_array(_msg(array, encoding, pad=pad, bigendian=bigendian))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, array)


def test_bgr_and_bgra_become_rgb():
    rgb = np.random.default_rng(1).integers(0, 255, (4, 6, 3), dtype=np.uint8)
    np.testing.assert_array_equal(image_to_rgb(_msg(rgb[:, :, ::-1], 'bgr8')), rgb)
    bgra = np.concatenate([rgb[:, :, ::-1], np.full((4, 6, 1), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(image_to_rgb(_msg(bgra, 'bgra8')), rgb)


@pytest.mark.parametrize('encoding, red', [
    ('rgb8', (255, 0, 0)), ('bgr8', (0, 0, 255)), ('rgba8', (255, 0, 0, 128)),
    ('bgra8', (0, 0, 255, 128))])
def test_pure_red_in_every_colour_encoding_comes_out_red(encoding, red):
    """Each encoding's channel order: rgba8 read as BGR gave a blue drawer, no error."""
    pixel = np.array(red, np.uint8)[None, None].repeat(2, 0).repeat(3, 1)
    rgb = image_to_rgb(_msg(pixel, encoding))
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert (rgb == np.array([255, 0, 0], np.uint8)).all()


def test_a_colour_image_with_no_channel_order_is_refused_not_guessed():
    """``8UC3`` (cv_bridge passthrough of an OpenCV frame) is usually BGR: it was read as RGB."""
    bgr = np.random.default_rng(2).integers(0, 255, (4, 6, 3), dtype=np.uint8)
    with pytest.raises(ImageConversionError, match="publish 'rgb8' or 'bgr8'"):
        image_to_rgb(_msg(bgr, '8UC3'))


def test_mono_16bit_scales_to_rgb8_and_a_depth_image_is_no_picture():
    """A depth camera's 16UC1 or 32FC1 on the colour topic ran a learner on black frames."""
    mono16 = np.array([[0, 65535]], np.uint16)
    np.testing.assert_array_equal(image_to_rgb(_msg(mono16, 'mono16'))[0, :, 0], [0, 255])
    for encoding, depth in (('32FC1', np.array([[0.0, 0.5, 1.0]], np.float32)),
                            ('16UC1', np.array([[0, 950, 1500]], np.uint16))):
        with pytest.raises(ImageConversionError, match='is a depth image, not a picture'):
            image_to_rgb(_msg(depth, encoding))
    with pytest.raises(ImageConversionError, match='pixel format to rgb8/bgr8.*image_proc'):
        image_to_rgb(_msg(np.zeros((2, 4, 2), np.uint8), 'yuv422'))


@pytest.mark.parametrize('bigendian', [False, True])
def test_mono_16bit_keeps_its_high_byte(bigendian):
    """0x1234 is 0x12 in 8 bit: a plain cast kept the low byte, noise for a camera image."""
    mono16 = np.array([[0x1234, 0x80FF, 0x00FF]], np.uint16)
    rgb = image_to_rgb(_msg(mono16, 'mono16', bigendian=bigendian))
    np.testing.assert_array_equal(rgb[0], [[0x12] * 3, [0x80] * 3, [0x00] * 3])


def test_depth_images_become_metres_in_either_encoding():
    """REP 118: 16UC1 in millimetres (0: no reading), 32FC1 in metres (NaN: no reading)."""
    millimetres = np.array([[0, 950, 1500]], np.uint16)
    out = image_to_depth(_msg(millimetres, '16UC1', bigendian=True))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.0, 0.95, 1.5]], rtol=1e-6)
    metres = np.array([[np.nan, 0.95, 1.5]], np.float32)
    np.testing.assert_array_equal(image_to_depth(_msg(metres, '32FC1')), metres)
    for encoding, array in (('mono16', millimetres), ('rgb8', np.zeros((1, 3, 3), np.uint8))):
        with pytest.raises(ImageConversionError, match='16UC1 .mm. or 32FC1 .m.'):
            image_to_depth(_msg(array, encoding))


@pytest.mark.parametrize('mutate,match', [
    (dict(encoding='yuv422'), 'unsupported image encoding'),
    (dict(encoding='bayer_rggb8'), 'unsupported image encoding'),
    (dict(height=0), 'zero size'),
    (dict(width=0), 'zero size'),
    (dict(step=5), 'step 5 is smaller'),
    (dict(data=b'\x00' * 10), 'expected step\\*height'),
])
def test_malformed_images_raise_a_clear_error(mutate, match):
    msg = _msg(np.zeros((4, 4, 3), np.uint8), 'rgb8')
    for key, value in mutate.items():
        setattr(msg, key, value)
    with pytest.raises(ImageConversionError, match=match):
        image_to_array(msg)


def test_array_to_image_rejects_mismatched_array():
    with pytest.raises(ImageConversionError, match='does not fit'):
        array_to_image(np.zeros((4, 4), np.uint8), 'rgb8', msg=SimpleNamespace())
    with pytest.raises(ImageConversionError, match='unsupported'):
        array_to_image(np.zeros((4, 4, 3), np.uint8), 'hsv8', msg=SimpleNamespace())


def test_array_to_image_fills_a_real_sensor_msgs_image():
    pytest.importorskip('sensor_msgs')
    array = np.random.default_rng(2).integers(0, 255, (6, 8, 3), dtype=np.uint8)
    msg = array_to_image(array, 'rgb8')
    assert (msg.height, msg.width, msg.step, msg.encoding) == (6, 8, 24, 'rgb8')
    np.testing.assert_array_equal(image_to_array(msg), array)


@pytest.mark.parametrize('encoding,channels', [
    ('rgb8', 3), ('bgr8', 3), ('rgba8', 4), ('bgra8', 4), ('mono8', 1), ('mono16', 1)])
def test_shrinking_before_the_channels_are_reordered_gives_the_same_tile(encoding, channels):
    from sole_r1_ros.camera import shrink_to_tile
    rng = np.random.default_rng(3)
    dtype = np.uint16 if encoding == 'mono16' else np.uint8
    shape = (72, 128) if channels == 1 else (72, 128, channels)
    msg = _msg(rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype), encoding)
    tile = image_to_rgb(msg, shrink=lambda frame: shrink_to_tile(frame, 32))
    assert tile.shape == (18, 32, 3) and tile.flags.c_contiguous
    np.testing.assert_array_equal(tile, shrink_to_tile(image_to_rgb(msg), 32))

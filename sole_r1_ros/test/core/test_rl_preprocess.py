"""Observation preprocessing: camera images become 3 x S x S uint8, views are checked."""
import numpy as np
import pytest

from sole_r1_ros.rl.config import DrQConfig
from sole_r1_ros.rl.preprocess import prepare_image, prepare_observation


def test_prepare_image_resizes_hwc_to_chw_uint8():
    image = np.zeros((48, 32, 3), np.uint8)
    image[..., 0] = 200          # red everywhere
    out = prepare_image(image, 16)
    assert out.shape == (3, 16, 16) and out.dtype == np.uint8
    assert np.all(out[0] == 200) and np.all(out[1:] == 0)
    same = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    np.testing.assert_array_equal(prepare_image(same, 8), same.transpose(2, 0, 1))


@pytest.mark.parametrize('bad', [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8),
                                 np.zeros((8, 8, 3), np.float32)])
def test_prepare_image_rejects_non_rgb_uint8(bad):
    with pytest.raises(ValueError, match='H x W x 3'):
        prepare_image(bad, 8)


def test_prepare_observation_uses_views_only_for_pixels():
    rgb = np.full((20, 20, 3), 7, np.uint8)
    pixels = DrQConfig(variant='pixels', image_size=16)
    obs = prepare_observation([1.0, 2.0], {'external': rgb, 'wrist': rgb}, pixels)
    assert set(obs) == {'state', 'external', 'wrist'} and obs['wrist'].shape == (3, 16, 16)
    assert obs['state'].dtype == np.float32
    state_only = prepare_observation([1.0, 2.0], {'external': None}, DrQConfig(variant='state'))
    assert set(state_only) == {'state'}
    with pytest.raises(ValueError, match='wrist'):
        prepare_observation([1.0], {'external': rgb, 'wrist': None}, pixels)

"""ament_copyright runs under colcon test on a ROS install; skipped where it is not installed."""
import pytest


@pytest.mark.linter
def test_copyright():
    main = pytest.importorskip('ament_copyright.main').main
    rc = main(argv=['.', 'test'])
    assert rc == 0, 'Found copyright errors'

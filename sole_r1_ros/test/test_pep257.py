"""ament_pep257 runs under colcon test on a ROS install; skipped where it is not installed."""
import pytest


@pytest.mark.linter
def test_pep257():
    main = pytest.importorskip('ament_pep257.main').main
    rc = main(argv=['.', 'test'])
    assert rc == 0, 'Found pep257 errors'

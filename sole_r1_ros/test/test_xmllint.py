"""ament_xmllint runs under colcon test on a ROS install; skipped where it is not installed."""
import pytest


@pytest.mark.linter
def test_xmllint():
    main = pytest.importorskip('ament_xmllint.main').main
    rc = main(argv=['.', 'test'])
    assert rc == 0, 'Found xmllint errors'

"""Tier 2: launch sim_learn.launch.py for real with launch_testing (ROS install / Docker only).

Skipped (never passed) where launch_testing is missing, as on a pip-only machine.
"""
import os
import unittest

import pytest

launch_testing = pytest.importorskip(
    'launch_testing', reason='launch_testing is not installed (needs a ROS install)')
pytest.importorskip('launch_ros')

import launch  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
import launch_testing.actions  # noqa: E402
import rclpy  # noqa: E402

from sole_r1_interfaces.msg import ProgressReward  # noqa: E402

_LAUNCH = os.path.join(os.path.dirname(__file__), '..', '..', 'launch', 'sim_learn.launch.py')


@pytest.mark.rostest
def generate_test_description():
    return launch.LaunchDescription([
        launch.actions.IncludeLaunchDescription(
            PythonLaunchDescriptionSource(_LAUNCH),
            launch_arguments={'task': 'reach-v3', 'goal': 'reach the goal',
                              'reward_backend': 'oracle', 'run_dir': '/tmp/sim_learn_test'
                              }.items()),
        launch_testing.actions.ReadyToTest(),
    ])


class TestSimLearnLaunch(unittest.TestCase):

    def test_progress_rewards_arrive_and_learner_serves_reset(self, proc_output):
        rclpy.init()
        node = rclpy.create_node('launch_probe')
        try:
            received = []
            node.create_subscription(ProgressReward, '/sole_r1/progress', received.append, 10)
            end = node.get_clock().now().nanoseconds + 60 * 10**9
            while not received and node.get_clock().now().nanoseconds < end:
                rclpy.spin_once(node, timeout_sec=0.2)
            self.assertTrue(received, 'no ProgressReward within 60 s')
            services = [name for name, _ in node.get_service_names_and_types()]
            self.assertIn('/learner_node/reset', services)
            self.assertIn('/learner_node/pause', services)
        finally:
            node.destroy_node()
            rclpy.shutdown()


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):

    def test_exit_codes(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, -15])

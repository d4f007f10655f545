#!/usr/bin/env bash
set -e
. "/opt/ros/${ROS_DISTRO}/setup.bash"
. /ws/install/setup.bash
export PATH=/ws/install/sole_r1_ros/lib/sole_r1_ros:$PATH
exec "$@"

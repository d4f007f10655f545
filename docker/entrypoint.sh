#!/usr/bin/env bash
set -e
. "/opt/ros/${ROS_DISTRO}/setup.bash"
. /ws/install/setup.bash
exec "$@"

#!/usr/bin/env bash
# The robot side of a run (compose's `robot` service): camera_node and learner_node in one
# container, and a stop that reaches both. `docker compose stop` / `down` send SIGTERM to this
# script only (it is PID 1), and a PID 1 ignores every signal it has no handler for, so without
# the trap below the learner would be SIGKILLed at the grace period's end and the run would lose
# everything since its last periodic checkpoint. The trap passes the stop on as SIGINT (Ctrl-C),
# waits for the learner's final checkpoint, then for the camera node.
#
#   robot.sh [extra learner_node --ros-args words, e.g. -p learner_node:episode_length:=150]
# SOLE_R1_PARAMS: the parameter file (default: the installed config/real_robot_learn.yaml);
# SOLE_R1_RUN_DIR: the learner's run directory (default /runs/real_robot).
set -u
params=${SOLE_R1_PARAMS:-/ws/install/sole_r1_ros/share/sole_r1_ros/config/real_robot_learn.yaml}
run_dir=${SOLE_R1_RUN_DIR:-/runs/real_robot}
[ -f "$params" ] || { echo "robot.sh: no parameter file at $params" >&2; exit 2; }

stopping=0
stop() {
  stopping=1
  kill -INT "$learner" "$camera" 2>/dev/null
}
trap stop INT TERM

camera_node --ros-args --params-file "$params" &
camera=$!
learner_node --ros-args --params-file "$params" -p "learner_node:run_dir:=$run_dir" "$@" &
learner=$!

# `wait` returns early (status > 128) when a trapped signal arrives: wait again until the
# learner itself has ended. If the camera node dies first, the learner holds the arm (stale
# frames) and says why; the container stays up so the run can be stopped cleanly.
while true; do
  wait "$learner"
  status=$?
  kill -0 "$learner" 2>/dev/null || break
done
[ "$stopping" = 1 ] || kill -INT "$camera" 2>/dev/null
wait "$camera" 2>/dev/null
exit "$status"

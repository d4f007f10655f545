"""ROS-free simulated robot: Meta-World tasks with cameras, joint states and true progress.

Importing this package needs only numpy; MuJoCo and Meta-World (the ``sim`` extra) load when
the first ``MetaWorldRobot`` is built.
"""
from sole_r1_ros.sim.commands import (
    command_from_pose, command_from_twist, EE_STEP_M, gripper_from_position)
from sole_r1_ros.sim.config import CAMERAS, clamp_command, COMMAND_LAYOUT, SimConfig
from sole_r1_ros.sim.metaworld_robot import (
    JOINT_NAMES, MetaWorldRobot, Observation, STATE_SIZE, StepInfo)
from sole_r1_ros.sim.progress import progress_from_distance, TaskProgress
from sole_r1_ros.sim.tasks import check_task_goals, TASK_GOALS

__all__ = [
    'CAMERAS',
    'check_task_goals',
    'clamp_command',
    'command_from_pose',
    'command_from_twist',
    'COMMAND_LAYOUT',
    'EE_STEP_M',
    'gripper_from_position',
    'JOINT_NAMES',
    'MetaWorldRobot',
    'Observation',
    'progress_from_distance',
    'SimConfig',
    'STATE_SIZE',
    'StepInfo',
    'TASK_GOALS',
    'TaskProgress',
]

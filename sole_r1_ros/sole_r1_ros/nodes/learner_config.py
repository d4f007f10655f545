"""The learner node's parameters: its own settings plus the config sections of its parts.

Kept apart from the node so ``sole-r1 learn`` and the tests can check parameters without
building a node.
"""
from dataclasses import dataclass
from typing import Any, Mapping

from sole_r1_ros.configuration import option, validate
from sole_r1_ros.rl import (
    CommandConfig, DrQConfig, LoopConfig, ReplayConfig, SafetyBox, SensingConfig, TeleopConfig)
from sole_r1_ros.rl.commands import ACTION_LAYOUTS, JointLimits


@dataclass(frozen=True)
class LearnerNodeConfig:
    """The learner node's own settings (the loop, agent and safety have their own sections)."""

    action_layout: str = option('ee_delta', "'ee_delta' (dx, dy, dz [, rotation], gripper) or "
                                "'joint_position'", choices=ACTION_LAYOUTS, read_only=True)
    command_topic: str = option('forward_command_controller/commands', 'where arm commands '
                                'go (MoveIt Servo: servo_node/delta_twist_cmds)', read_only=True)
    gripper_topic: str = option('gripper_controller/commands', 'gripper commands, when '
                                "command.gripper_command_type is not 'none'", read_only=True)
    pose_source: str = option('topic', "end-effector pose from 'topic' (PoseStamped on "
                              "ee_pose) or 'tf' (base_frame -> ee_frame; needs tf2_ros)",
                              choices=('topic', 'tf'), read_only=True)
    tf_ee_frame: str = option('tool0', 'end-effector frame for pose_source tf', read_only=True)
    teleop: bool = option(False, 'take a human over sensor_msgs/Joy on joy (SpaceMouse, '
                          'gamepad); see teleop.*', read_only=True)
    reset_service: str = option('sim_robot_node/reset', 'Trigger service that resets the robot '
                                "('' = none: reset by hand)", read_only=True)
    wait_for_reward: bool = option(True, 'begin no episode (the arm holds) while no reward '
                                   'node publishes progress: a model that takes minutes to load '
                                   'left the arm exploring unrewarded', read_only=True)
    hand_reset_s: float = option(0.0, "with reset_service '': the arm holds this long between "
                                 'episodes while a person puts the scene back (pause the '
                                 'learner to take longer) [s]', range=(0.0, 600.0),
                                 read_only=True)
    run_dir: str = option('runs/learner', 'checkpoints and logs go here', read_only=True)
    goal: str = option('', "the task in words, the reward node's goal: kept in the checkpoints, "
                       "and a resume with another goal is refused ('': not checked)",
                       read_only=True)
    marker_frame: str = option('world', "frame_id of the 'who drives' marker (rviz's fixed "
                               'frame; the reward marker is in it too)', read_only=True)
    resume: bool = option(True, 'continue from the newest valid checkpoint in run_dir (none: '
                          'start fresh; only unreadable ones: refuse to configure)',
                          read_only=True)
    torch_threads: int = option(1, 'CPU threads of torch in this process (0: torch default, '
                                'one per core). 1 by default: two threads on two busy cores made '
                                'updates 5x slower (bench/results/drq.md)', range=(0, 256),
                                read_only=True)
    stop_budget_s: float = option(7.0, 'a stop (Ctrl-C, SIGTERM, deactivate) holds the robot at '
                                  'once and ends within this long, writing a final checkpoint '
                                  'only if it fits [s]', range=(1.0, 600.0), read_only=True)
    autostart: bool = option(True, 'configure and activate at start (launch files drive the '
                             'lifecycle themselves and set this false)', read_only=True)

    def __post_init__(self) -> None:
        validate(self)
        if not self.run_dir.strip():
            raise ValueError('LearnerNodeConfig.run_dir is empty: name the folder for the '
                             "run's checkpoints and logs")
        if self.teleop and self.action_layout != 'ee_delta':
            raise ValueError("LearnerNodeConfig.teleop needs action_layout 'ee_delta': a "
                             'SpaceMouse or gamepad gives Cartesian motions, not joint offsets')


SECTIONS = {'node': (LearnerNodeConfig, ''), 'sensing': (SensingConfig, ''),
            'loop': (LoopConfig, ''), 'command': (CommandConfig, 'command.'),
            'safety': (SafetyBox, 'safety.'), 'joints': (JointLimits, 'joints.'),
            'teleop': (TeleopConfig, 'teleop.'), 'agent': (DrQConfig, 'agent.'),
            'replay': (ReplayConfig, 'replay.')}


def check_sections(configs: Mapping[str, Any]) -> None:
    """Refuse sections that are valid one by one and unsafe together (configs by section name).

    Raises:
        ValueError: a command that would be built from an input the learner does not keep
            fresh.
    """
    node, sensing = configs['node'], configs['sensing']
    if node.action_layout == 'ee_delta' and not sensing.use_ee_pose:
        raise ValueError("action_layout 'ee_delta' needs use_ee_pose: true: each command is a "
                         'step from the measured end-effector pose, kept inside the safety box')
    agent = configs['agent']
    if agent.variant == 'pixels':
        missing = [key for key in agent.image_keys if key not in sensing.views]
        if missing:   # the actor failed on every step, 20 log lines a second, 0 steps
            raise ValueError(f'agent.image_keys {list(agent.image_keys)} name views that views '
                             f'{list(sensing.views)} does not: {missing}; a robot with one camera '
                             'sets both to [external] (and camera_node use_wrist: false)')
    if node.action_layout == 'joint_position' and sensing.observation != 'proprio':
        raise ValueError("action_layout 'joint_position' needs observation 'proprio': joint "
                         'targets are steps from the measured joints, which must be fresh')

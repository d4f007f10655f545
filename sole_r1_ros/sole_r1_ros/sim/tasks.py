"""Language goals for the 50 Meta-World v3 tasks, phrased as a user would type them.

Meta-World ships no task descriptions; these paraphrase the task definitions of the Meta-World
paper (Yu et al., 2019), corrected where the simulator's success test differs (dial-turn succeeds
after about 80 degrees, not 180), and are the text the video-language model judges progress on.
"""

TASK_GOALS: dict[str, str] = {
    'assembly-v3': 'pick up the nut and place it onto the peg',
    'basketball-v3': 'pick up the ball and dunk it into the basket',
    'bin-picking-v3': 'pick up the puck from one bin and place it into the other bin',
    'box-close-v3': 'pick up the lid and close the box with it',
    'button-press-topdown-v3': 'press the button down from the top',
    'button-press-topdown-wall-v3': 'reach over the wall and press the button down from the top',
    'button-press-v3': 'press the button in from the front',
    'button-press-wall-v3': 'go around the wall and press the button',
    'coffee-button-v3': 'push the button on the coffee machine',
    'coffee-pull-v3': 'pull the mug out from under the coffee machine',
    'coffee-push-v3': 'push the mug under the coffee machine',
    'dial-turn-v3': 'turn the dial a quarter turn',
    'disassemble-v3': 'lift the nut off the peg',
    'door-close-v3': 'close the door',
    'door-lock-v3': 'lock the door by turning the lock clockwise',
    'door-open-v3': 'open the door',
    'door-unlock-v3': 'unlock the door by turning the lock counter-clockwise',
    'drawer-close-v3': 'close the drawer',
    'drawer-open-v3': 'open the drawer',
    'faucet-close-v3': 'turn the faucet handle clockwise to close the faucet',
    'faucet-open-v3': 'turn the faucet handle counter-clockwise to open the faucet',
    'hammer-v3': 'pick up the hammer and hammer the nail into the wall',
    'hand-insert-v3': 'put the gripper into the hole',
    'handle-press-side-v3': 'press the handle down from the side',
    'handle-press-v3': 'press the handle down',
    'handle-pull-side-v3': 'pull the handle up from the side',
    'handle-pull-v3': 'pull the handle up',
    'lever-pull-v3': 'pull the lever up until it points straight up',
    'peg-insert-side-v3': 'pick up the peg and insert it sideways into the hole',
    'peg-unplug-side-v3': 'unplug the peg from the hole sideways',
    'pick-out-of-hole-v3': 'pick the puck up out of the hole',
    'pick-place-v3': 'pick up the puck and place it at the goal',
    'pick-place-wall-v3': 'pick up the puck, lift it over the wall and place it at the goal',
    'plate-slide-back-side-v3': 'slide the plate sideways out of the cabinet',
    'plate-slide-back-v3': 'slide the plate back out of the cabinet',
    'plate-slide-side-v3': 'slide the plate sideways into the cabinet',
    'plate-slide-v3': 'slide the plate into the cabinet',
    'push-back-v3': 'pull the puck back to the goal',
    'push-v3': 'push the puck to the goal',
    'push-wall-v3': 'push the puck around the wall to the goal',
    'reach-v3': 'move the gripper to the goal position',
    'reach-wall-v3': 'reach over the wall to the goal position',
    'shelf-place-v3': 'pick up the puck and place it on the shelf',
    'soccer-v3': 'push the ball into the goal',
    'stick-pull-v3': 'grasp the stick and use it to pull the box',
    'stick-push-v3': 'grasp the stick and use it to push the box',
    'sweep-into-v3': 'sweep the puck into the hole',
    'sweep-v3': 'sweep the puck off the table',
    'window-close-v3': 'slide the window closed',
    'window-open-v3': 'slide the window open',
}


def check_task_goals() -> None:
    """Check that TASK_GOALS names exactly the installed Meta-World v3 tasks.

    Raises:
        ImportError: Meta-World is not installed (the ``sim`` extra).
        ValueError: a task has no goal, or a goal names a task Meta-World does not have.
    """
    try:
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS
    except ImportError as exc:
        raise ImportError(
            "Meta-World is missing: install the 'sim' extra (pip install 'sole_r1_ros[sim]')"
        ) from exc
    missing = sorted(set(ALL_V3_ENVIRONMENTS) - set(TASK_GOALS))
    extra = sorted(set(TASK_GOALS) - set(ALL_V3_ENVIRONMENTS))
    if missing or extra:
        raise ValueError(f'TASK_GOALS does not match Meta-World: missing {missing}, extra {extra}')

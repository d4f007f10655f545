"""Time-reversed successful training episodes, each asked with a goal that undoes its task.

A task is reversed only when its reverse is none of the 16 Meta-World tasks outside the 34
(the 6 held out for selection, the 10 kept for others' evaluation): door-open (-> door-close),
door-unlock (-> door-lock), plate-slide-back (-> plate-slide), plate-slide-side
(-> plate-slide-back-side), push (-> push-back), window-open (-> window-close) are skipped.
Button presses, bin-picking (its own reverse) and sweep (the puck leaves the table) have none.
The successful expert, noisy and pause episodes of the training split are played backwards with
progress 100 - the original's (0 at the first frame) and a hand-written goal and two paraphrases.

Usage:  python undo_episodes.py SOURCE_FOLDER OUT   (SOURCE: the plain copy of make compact-model)
"""
import sys
import numpy as np
from sole_r1_ros.labelled.folder import iter_episodes, write_episode
from sole_r1_ros.labelled.episode import LabelledEpisode

REVERSE = {
    'assembly-v3': ('lift the nut off the peg', 'take the nut off the peg', 'remove the ring from the peg'),
    'disassemble-v3': ('pick up the nut and place it onto the peg', 'put the nut on the peg', 'drop the ring over the peg'),
    'basketball-v3': ('take the ball out of the basket and put it back on the table', 'lift the ball out of the basket', 'bring the ball back down from the basket'),
    'coffee-pull-v3': ('push the mug under the coffee machine', 'slide the mug into the coffee machine', 'put the cup under the coffee machine'),
    'coffee-push-v3': ('pull the mug out from under the coffee machine', 'take the mug out of the coffee machine', 'pull the cup away from the coffee machine'),
    'drawer-open-v3': ('close the drawer', 'push the drawer shut', 'slide the drawer closed'),
    'drawer-close-v3': ('open the drawer', 'pull the drawer open', 'slide the drawer open'),
    'hammer-v3': ('pull the nail back out of the wall with the hammer', 'take the nail out with the hammer', 'put the hammer back down'),
    'hand-insert-v3': ('take the gripper out of the hole', 'pull the hand out of the hole', 'lift the gripper out of the hole'),
    'handle-press-v3': ('pull the handle up', 'lift the handle up', 'pull up on the handle'),
    'handle-pull-v3': ('press the handle down', 'push the handle down', 'press down on the handle'),
    'peg-insert-side-v3': ('unplug the peg from the hole sideways', 'pull the peg out of the hole sideways', 'unplug the peg'),
    'peg-unplug-side-v3': ('pick up the peg and insert it sideways into the hole', 'put the peg into the hole from the side', 'slide the peg sideways into the hole'),
    'pick-out-of-hole-v3': ('put the puck down into the hole', 'place the puck in the hole', 'drop the puck into the hole'),
    'pick-place-v3': ('take the puck from the goal back to where it started', 'move the puck away from the target', 'pick the puck up from the goal and put it back'),
    'pick-place-wall-v3': ('carry the puck back over the wall away from the goal', 'lift the puck back across the wall', 'take the puck from the target back over the wall'),
    'push-wall-v3': ('pull the puck back around the wall away from the goal', 'drag the puck back past the wall', 'pull the puck away from the target around the wall'),
    'reach-v3': ('move the gripper back from the goal position', 'move the hand away from the target', 'bring the end effector back from the goal'),
    'reach-wall-v3': ('move the gripper back over the wall away from the goal', 'move the hand back over the wall', 'reach back from the goal behind the wall'),
    'shelf-place-v3': ('take the puck off the shelf and put it back on the table', 'remove the puck from the shelf', 'lift the puck down from the shelf'),
    'soccer-v3': ('pull the ball back out of the goal', 'take the ball out of the net', 'drag the ball back from the goal'),
    'stick-pull-v3': ('grasp the stick and use it to push the box', 'use the stick to push the box', 'push the box with the stick'),
    'stick-push-v3': ('grasp the stick and use it to pull the box', 'use the stick to pull the box', 'pull the box with the stick'),
}



def main(src: str, out: str) -> int:
    """Write the reversed episodes of ``src`` to ``out``; return how many."""
    count_written = 0
    for ep in iter_episodes(src, tasks=list(REVERSE), split='train'):
        if not ep.succeeded or ep.behaviour not in ('expert', 'noisy', 'pause'):
            continue
        p = np.asarray(ep.progress, dtype=np.float64)
        rev = np.clip(100.0 - p[::-1], 0.0, 100.0)
        rev[0] = 0.0
        count = len(p)
        ext = [ep.external[count - 1 - i] for i in range(count)]
        wr = None if ep.wrist is None else [ep.wrist[count - 1 - i] for i in range(count)]
        goal, *para = REVERSE[ep.task]
        write_episode(out, LabelledEpisode(
            episode_id=ep.episode_id + '-reversed', goal=goal, progress=rev.tolist(),
            external=ext, wrist=wr, task=ep.task.replace('-v3', '-reversed-v3'), success=True,
            behaviour='expert', split='train', paraphrases=tuple(para),
            meta={'scene': ep.task}))
        count_written += 1
    return count_written


if __name__ == '__main__':
    print(main(sys.argv[1], sys.argv[2]), 'reversed episodes')

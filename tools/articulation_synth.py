"""Procedural mechanisms worked by the arm in training scenes: a measured experiment, not kept.

The data README's "Mechanisms the 40 tasks do not have" made its episodes with this script. In
16 of the 34 training scenes a mechanism of one of four kinds is added to the scene's MuJoCo
model (``mujoco.MjSpec``): a knob turned about a vertical axis, a lever pressed down or lifted
about a horizontal one, a lid on a box, a slider on a rail; random colour, place and heading.
The arm is driven through Meta-World's mocap weld as its actions drive it; the mechanism's joint
follows the finger pads kinematically (no contact), so the label is the joint's displacement
from its start toward the asked limit, 0-100 (a training label, never an input). Behaviours:
expert (twice), stop-short (30-70 %), wrong-way (the other way under the asked goal), noisy,
touch (the hand reaches the handle and moves nothing). The goals ("turn the red knob
clockwise", "press the blue lever down", "open the green lid", "slide the grey slider to the
left", two paraphrases each) name the colour, so that two mechanisms are never confused.

    python tools/articulation_synth.py --out runs/compact_data_art --per-scene 24 --workers 2
"""
import argparse
import multiprocessing
import warnings

import mujoco
import numpy as np

SCENES = ['reach-v3', 'push-v3', 'button-press-v3', 'drawer-close-v3', 'window-open-v3',
          'door-open-v3', 'sweep-v3', 'pick-place-v3', 'coffee-push-v3', 'handle-press-v3',
          'reach-wall-v3', 'shelf-place-v3', 'soccer-v3', 'hammer-v3', 'basketball-v3',
          'stick-push-v3']
COLOURS = {'red': (0.8, 0.1, 0.1), 'blue': (0.1, 0.2, 0.8), 'green': (0.1, 0.6, 0.2),
           'yellow': (0.85, 0.75, 0.1), 'black': (0.08, 0.08, 0.08), 'white': (0.9, 0.9, 0.9),
           'orange': (0.9, 0.45, 0.05), 'grey': (0.5, 0.5, 0.5)}
# kind -> ((goal towards +q, paraphrases), (goal towards -q, paraphrases))
GOALS = {
    'knob': ((('turn the {c} knob counter-clockwise', 'rotate the {c} handle counter-clockwise',
               'twist the {c} knob anticlockwise'),
              ('turn the {c} knob clockwise', 'rotate the {c} handle clockwise',
               'twist the {c} knob clockwise'))),
    'lever': ((('lift the {c} lever up', 'raise the {c} handle', 'pull the {c} lever up'),
               ('press the {c} lever down', 'push the {c} handle down', 'lower the {c} lever'))),
    'lid': ((('open the {c} lid', 'lift the {c} lid open', 'flip the {c} lid open'),
             ('close the {c} lid', 'shut the {c} lid', 'push the {c} lid closed'))),
    'slider': ((('slide the {c} slider to the right', 'move the {c} slider right',
                 'push the {c} slider over to the right'),
                ('slide the {c} slider to the left', 'move the {c} slider left',
                 'push the {c} slider over to the left'))),
}
RANGES = {'knob': (-1.3, 1.3), 'lever': (-0.75, 0.75), 'lid': (0.0, 1.7), 'slider': (-0.09, 0.09)}
BEHAVIOURS = ('expert', 'expert', 'stop-short', 'wrong-way', 'noisy', 'touch')


def build(scene_xml, kind, pos, yaw, rgb):
    spec = mujoco.MjSpec.from_file(scene_xml)
    quat = [np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]
    base = spec.worldbody.add_body(name='mech_base', pos=pos, quat=quat)
    G = mujoco.mjtGeom
    kw = dict(contype=0, conaffinity=0)
    cyl, box, sphere = G.mjGEOM_CYLINDER, G.mjGEOM_BOX, G.mjGEOM_SPHERE
    dark = list(np.array(rgb) * 0.5) + [1]
    col = list(rgb) + [1]
    if kind == 'knob':
        base.add_geom(type=cyl, size=[0.02, 0.05, 0], pos=[0, 0, 0.05], rgba=dark, **kw)
        part = base.add_body(name='mech_part', pos=[0, 0, 0.105])
        part.add_joint(name='mech_joint', type=mujoco.mjtJoint.mjJNT_HINGE, axis=[0, 0, 1])
        part.add_geom(type=cyl, size=[0.025, 0.008, 0], rgba=col, **kw)
        part.add_geom(type=box, size=[0.05, 0.009, 0.009], pos=[0.05, 0, 0], rgba=col, **kw)
        part.add_site(name='mech_handle', pos=[0.09, 0, 0.02])
    elif kind == 'lever':
        base.add_geom(type=box, size=[0.02, 0.03, 0.06], pos=[0, 0, 0.06], rgba=dark, **kw)
        part = base.add_body(name='mech_part', pos=[0, 0, 0.11])
        part.add_joint(name='mech_joint', type=mujoco.mjtJoint.mjJNT_HINGE, axis=[0, -1, 0])
        part.add_geom(type=box, size=[0.06, 0.01, 0.01], pos=[0.06, 0, 0], rgba=col, **kw)
        part.add_geom(type=sphere, size=[0.018, 0, 0], pos=[0.12, 0, 0], rgba=col, **kw)
        part.add_site(name='mech_handle', pos=[0.12, 0, 0.025])
    elif kind == 'lid':
        base.add_geom(type=box, size=[0.06, 0.05, 0.035], pos=[0, 0, 0.035], rgba=dark, **kw)
        part = base.add_body(name='mech_part', pos=[0, 0.05, 0.072])
        part.add_joint(name='mech_joint', type=mujoco.mjtJoint.mjJNT_HINGE, axis=[-1, 0, 0])
        part.add_geom(type=box, size=[0.062, 0.052, 0.004], pos=[0, -0.052, 0], rgba=col, **kw)
        part.add_geom(type=box, size=[0.015, 0.008, 0.008], pos=[0, -0.1, 0.006], rgba=dark, **kw)
        part.add_site(name='mech_handle', pos=[0, -0.105, 0.02])
    else:
        base.add_geom(type=box, size=[0.13, 0.015, 0.01], pos=[0, 0, 0.01], rgba=dark, **kw)
        part = base.add_body(name='mech_part', pos=[0, 0, 0.035])
        part.add_joint(name='mech_joint', type=mujoco.mjtJoint.mjJNT_SLIDE, axis=[1, 0, 0])
        part.add_geom(type=box, size=[0.02, 0.02, 0.02], rgba=col, **kw)
        part.add_site(name='mech_handle', pos=[0, 0, 0.03])
    part.explicitinertial = True
    part.mass = 0.05
    part.inertia = [1e-4, 1e-4, 1e-4]
    return spec.compile()


def rollout(job):
    root, scene, index = job
    from sole_r1_ros.labelled import folder as labelled_folder, LabelledEpisode
    from sole_r1_ros.sim import MetaWorldRobot, SimConfig
    from sole_r1_ros.sim.rendering import CameraRig
    eid = f'{scene}-art-{index:03d}'
    if labelled_folder.is_finished(root, eid):
        return 0
    rng = np.random.default_rng([index, sum(map(ord, scene)), 7])
    kind = ['knob', 'lever', 'lid', 'slider'][index % 4]
    behaviour = BEHAVIOURS[(index // 4) % len(BEHAVIOURS)]
    robot = MetaWorldRobot(SimConfig(task=scene, image_width=64, image_height=64,
                                     external_camera='corner4', wrist_camera='gripperPOV',
                                     max_episode_steps=400, seed=0))
    try:
        robot.reset(seed=3000 + index, render=False)
        env = robot._env
        side = rng.choice([-1, 1])
        pos = [side * rng.uniform(0.0, 0.15), rng.uniform(0.62, 0.78), 0.0]
        yaw = 0.0 if kind == 'slider' else float(rng.uniform(-np.pi, np.pi))
        if kind == 'lever':   # the bar points away from the robot's base or sideways
            yaw = float(rng.choice([np.pi / 2, 0.0, np.pi]) + rng.uniform(-0.4, 0.4))
        if kind == 'lid':
            yaw = float(rng.uniform(-0.5, 0.5))
        cname, rgb = list(COLOURS.items())[rng.integers(len(COLOURS))]
        model = build(env.model_name, kind, pos, yaw, rgb)
        model.eq_data[:] = env.model.eq_data
        model.eq_active0[:] = env.model.eq_active0
        model.opt.timestep = env.model.opt.timestep
        data = mujoco.MjData(model)
        data.eq_active[:] = env.data.eq_active
        n = env.model.nq
        data.qpos[:n] = env.data.qpos[:n]
        data.qvel[:env.model.nv] = env.data.qvel[:env.model.nv]
        data.mocap_pos[:] = env.data.mocap_pos
        data.mocap_quat[:] = env.data.mocap_quat
        jq = model.jnt_qposadr[model.joint('mech_joint').id]
        lo, hi = RANGES[kind]
        direction = int(rng.choice([1, -1]))        # +1: towards hi
        if kind == 'lid':
            q0 = lo if direction > 0 else hi
            q0 = q0 + (0.1 if direction > 0 else -0.1) * rng.uniform(0, 1)
        else:
            q0 = rng.uniform(lo + 0.2 * (hi - lo), hi - 0.2 * (hi - lo))
        asked_limit = hi if direction > 0 else lo
        move_dir = -direction if behaviour == 'wrong-way' else direction
        end = hi if move_dir > 0 else lo
        fraction = rng.uniform(0.3, 0.7) if behaviour == 'stop-short' else 1.0
        if behaviour == 'touch':
            fraction = 0.0
        q_goal = q0 + fraction * (end - q0)
        noise = 0.3 if behaviour == 'noisy' else 0.0
        data.qpos[jq] = q0
        data.ctrl[:] = [1.0, -1.0]   # gripper closed, as Meta-World's action 1
        mujoco.mj_forward(model, data)
        site = model.site('mech_handle').id
        rig = CameraRig(model, ['corner4', 'gripperPOV'], 64, 64)

        def tcp():   # between the finger pads, as Meta-World's tcp_center
            return (data.body('rightpad').xpos + data.body('leftpad').xpos) / 2
        ext, wri, prog = [], [], []

        def label():
            return float(100 * np.clip((data.qpos[jq] - q0) / (asked_limit - q0), 0, 1))

        def handle_at(q):
            keep = data.qpos[jq]
            data.qpos[jq] = q
            mujoco.mj_kinematics(model, data)
            p = data.site_xpos[site].copy()
            data.qpos[jq] = keep
            mujoco.mj_kinematics(model, data)
            return p

        def snap():
            imgs = rig.render(data)
            ext.append(imgs[0])
            wri.append(imgs[1])
            prog.append(label())

        step = [0]
        q_now = [q0]
        jd = model.jnt_dofadr[model.joint('mech_joint').id]

        def hold():
            data.qpos[jq] = q_now[0]
            data.qvel[jd] = 0.0
            mujoco.mj_kinematics(model, data)

        def physics_step():   # one control period, the mechanism held; a frame every second
            mujoco.mj_step(model, data, nstep=env.frame_skip)
            hold()
            step[0] += 1
            if step[0] % 2 == 0:
                snap()

        def move_to(target, tol=0.015, limit=60, speed=0.6):
            # Proportional control of the hand through the mocap weld, as Meta-World's actions.
            for _ in range(limit):
                hand = tcp()
                if np.linalg.norm(target - hand) < tol:
                    return
                cmd = np.clip((target - hand) / 0.012, -speed, speed) + rng.normal(0, noise, 3)
                data.mocap_pos[0] = np.clip(data.mocap_pos[0] + np.clip(cmd, -1, 1) * 0.01,
                                            env.mocap_low, env.mocap_high)
                physics_step()

        snap()
        start = handle_at(q0)
        hand = tcp()
        move_to(np.r_[hand[:2], max(hand[2], start[2] + 0.1)])
        move_to(start + [0, 0, 0.08])
        move_to(start, tol=0.012)
        qs = np.linspace(q0, q_goal, max(2, int(abs(q_goal - q0) / (hi - lo) * 25) + 1))
        for q in qs[1:]:
            target = handle_at(q)
            for _ in range(8):
                if np.linalg.norm(target - tcp()) < 0.03:
                    break
                move_to(target, tol=0.02, limit=1, speed=0.5)
            if np.linalg.norm(target - tcp()) < 0.04:
                q_now[0] = q
                hold()
        for _ in range(4):      # stay a moment
            physics_step()
        rig.close()
    finally:
        robot.close()
    goal, *paraphrases = (g.format(c=cname) for g in GOALS[kind][0 if direction > 0 else 1])
    sign = {1: 'pos', -1: 'neg'}[direction]
    ep = LabelledEpisode(
        episode_id=eid, goal=goal, progress=prog, external=np.stack(ext), wrist=np.stack(wri),
        task=scene.replace('-v3', f'-art-{kind}-{sign}-v3'), success=prog[-1] >= 95,
        behaviour='expert' if behaviour in ('expert', 'noisy') else behaviour, split='train',
        paraphrases=tuple(paraphrases), meta={'scene': scene})
    labelled_folder.write_episode(root, ep)
    return 1


if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', required=True)
    ap.add_argument('--per-scene', type=int, default=24)
    ap.add_argument('--first', type=int, default=0, help='index of the first episode per scene')
    ap.add_argument('--scenes', nargs='*', default=SCENES)
    ap.add_argument('--workers', type=int, default=2)
    a = ap.parse_args()
    jobs = [(a.out, s, i) for s in a.scenes for i in range(a.first, a.first + a.per_scene)]
    warnings.filterwarnings('ignore', message='Constant\\(s\\) may be too high')
    with multiprocessing.get_context('spawn').Pool(a.workers) as pool:
        done = 0
        for k, r in enumerate(pool.imap_unordered(rollout, jobs)):
            done += r
            if k % 20 == 0:
                print(k, len(jobs), flush=True)
    print('written', done)

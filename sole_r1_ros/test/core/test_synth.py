"""Synthetic episodes: perturbations do what they say (real physics), format, resume, export."""
import json
import os

import numpy as np
import pytest

pytest.importorskip('metaworld')

from sole_r1_ros import labelled  # noqa: E402
from sole_r1_ros.finetune.examples import read_examples  # noqa: E402
from sole_r1_ros.reward import protocol  # noqa: E402
from sole_r1_ros.sim import MetaWorldRobot, SimConfig  # noqa: E402
from sole_r1_ros.synth import (  # noqa: E402
    BEHAVIOURS, behaviour_for_episode, BehaviourPlan, draw_plan, EVAL_PARAPHRASES, generate,
    PerturbedExpert, rollout, SynthConfig, TRAIN_PARAPHRASES)
from sole_r1_ros.synth.export import export_finetune, reasoning_trace  # noqa: E402
from sole_r1_ros.synth.generate import EpisodeSpec  # noqa: E402


@pytest.fixture(scope='module')
def reach_robot():
    robot = MetaWorldRobot(SimConfig(task='reach-v3', render=False, max_episode_steps=400))
    yield robot
    robot.close()


def _run(robot, plan, seed=3, max_steps=200):
    """Drive ``robot`` with the perturbed expert until its script ends or the step cap."""
    observation = robot.reset(seed=seed)
    controller = PerturbedExpert(plan, np.random.default_rng(seed), observation.state)
    progress = [0.0]
    success = False
    for _ in range(max_steps):
        action = controller.act(observation.state, progress[-1], robot.expert_action)
        observation, info = robot.step(action, render=False)
        progress.append(info.progress)
        success = success or info.success
        if controller.finished:
            break
    return np.array(progress), success, controller


def test_every_behaviour_appears_in_one_cycle_and_draws_valid_plans():
    cycle = [behaviour_for_episode(i) for i in range(10)]
    assert set(cycle) == set(BEHAVIOURS)
    rng = np.random.default_rng(0)
    for kind in BEHAVIOURS:
        plan = draw_plan(kind, rng, np.array([0.0, 0.6, 0.05]))
        assert plan.kind == kind
    with pytest.raises(ValueError):
        BehaviourPlan('teleport')


def test_stop_short_ends_below_success(reach_robot):
    progress, success, controller = _run(
        reach_robot, BehaviourPlan('stop_short', trigger_progress=50.0, duration_steps=15))
    assert controller.finished and controller.triggered
    assert not success
    assert 50.0 <= progress.max() < 100.0
    assert progress[-1] < 90.0


def test_reversal_undoes_progress(reach_robot):
    progress, success, _ = _run(reach_robot, BehaviourPlan(
        'reversal', trigger_progress=50.0, duration_steps=25, resume=False))
    assert not success
    assert progress.max() >= 50.0
    assert progress[-1] < progress.max() - 25.0


def test_expert_reaches_success_and_pause_only_delays_it(reach_robot):
    expert, expert_success, _ = _run(reach_robot, BehaviourPlan('expert'), max_steps=150)
    paused, paused_success, _ = _run(reach_robot, BehaviourPlan(
        'pause', trigger_progress=20.0, duration_steps=20), max_steps=150)
    assert expert_success and paused_success
    assert np.argmax(paused >= 100) > np.argmax(expert >= 100) + 10


def test_a_braked_stop_short_ends_where_the_push_ended():
    # A shoved drawer slides on to its stop; braked, it stays where the hand let go, so the
    # episode is a labelled partial close. Episode 0 of seed 1 stops at about 20 % closed.
    finals = {}
    for brake in (False, True):
        config = SynthConfig(tasks=('drawer-close-v3',), episodes_per_task=1, image_size=16,
                             max_steps=250, seed=1, behaviour='stop_short', brake=brake)
        spec = EpisodeSpec('drawer-close-v3', 0, config)
        with MetaWorldRobot(SimConfig(task='drawer-close-v3', image_width=16,
                                      image_height=16, max_episode_steps=300)) as robot:
            meta, arrays = rollout(robot, spec)
        assert meta['behaviour'] == 'stop_short' and meta['plan']['trigger_approach'] == 0.0
        finals[brake] = meta['final_progress']
        trigger = meta['plan']['trigger_progress']
        assert meta['final_progress'] == pytest.approx(float(arrays['step_progress'][-1]))
    assert finals[True] < trigger + 15.0 < finals[False] - 15.0, (trigger, finals)
    with pytest.raises(ValueError, match='behaviour must be one of'):
        SynthConfig(behaviour='teleport')


def test_the_command_makes_one_behaviour_braked_and_records_it(tmp_path, capsys):
    from sole_r1_ros.cli import main

    out = str(tmp_path / 'braked')
    assert main(['synth', '--tasks', 'drawer-close-v3', '--episodes', '2', '--behaviour',
                 'stop_short', '--brake', '--image-size', '16', '--max-steps', '60',
                 '--out', out, '--workers', '1']) == 0
    with open(os.path.join(out, 'synth.json'), encoding='utf-8') as stream:
        config = json.load(stream)['config']
    assert config['behaviour'] == 'stop_short' and config['brake'] is True
    assert [e['behaviour'] for e in labelled.list_episodes(out)] == ['stop_short'] * 2
    assert main(['synth', '--undo-of', out, '--brake', '--out', str(tmp_path / 'undo')]) != 0
    assert '--brake goes with Meta-World expert episodes' in capsys.readouterr().err


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synth'))
    config = SynthConfig(tasks=('reach-v3',), episodes_per_task=3, image_size=16,
                         frame_stride=3, max_steps=40)
    counts = []
    entries = generate(config, root, workers=1, on_done=counts.append)
    return root, config, entries, counts


def test_episodes_are_labelled_episodes_with_simulator_truth(dataset):
    root, config, entries, counts = dataset
    assert sum(counts) == 3
    assert labelled.list_episodes(root) == entries
    assert [e['behaviour'] for e in entries] == [behaviour_for_episode(i) for i in range(3)]
    episodes = labelled.load_episodes(root)
    assert len(episodes) == len(entries) == 3
    for entry, episode in zip(entries, episodes):
        arrays = episode.extras
        frames = episode.num_frames
        assert episode.task_id == 'reach-v3' and episode.goal == 'move the gripper to the goal '\
            'position'
        assert episode.paraphrases == TRAIN_PARAPHRASES['reach-v3']
        assert episode.meta['eval_paraphrases'] == list(EVAL_PARAPHRASES['reach-v3'])
        assert episode.external.shape == (frames, 16, 16, 3)
        assert episode.wrist.shape == (frames, 16, 16, 3)
        assert episode.external.dtype == np.uint8
        assert episode.external.reshape(frames, -1).mean(axis=1).min() > 5  # not black
        assert arrays['frame_steps'][0] == 0
        assert arrays['frame_steps'][-1] == entry['num_steps']  # the last step is stored
        assert np.all(np.diff(arrays['frame_steps']) > 0)
        truth = episode.truth()
        assert np.all((truth >= 0) & (truth <= 100))
        assert len(arrays['step_progress']) == entry['num_steps'] + 1
        np.testing.assert_allclose(truth, arrays['step_progress'][arrays['frame_steps']],
                                   atol=1e-3)
        assert entry['max_progress'] == pytest.approx(float(arrays['step_progress'].max()))
        assert arrays['state'].shape == (frames, 39)
        assert arrays['approach'].shape == (frames,) and arrays['approach'][0] == 0.0
        assert episode.success == bool(arrays['step_success'][-1])


def test_resume_skips_finished_episodes_and_refuses_other_settings(dataset):
    root, config, entries, _ = dataset
    labels = os.path.join(root, 'episodes', 'reach-v3-0000', 'labels.json')
    before = os.path.getmtime(labels)
    counts = []
    again = generate(config, root, workers=1, on_done=counts.append)
    assert counts == [3]  # reported as already done, nothing rolled out
    assert os.path.getmtime(labels) == before
    assert again == entries
    with pytest.raises(ValueError, match='other settings'):
        generate(SynthConfig(tasks=('reach-v3',), episodes_per_task=3, image_size=32,
                             frame_stride=3, max_steps=40), root)


def test_export_uses_the_finetune_writer_with_grounded_reasoning(dataset, tmp_path):
    root = dataset[0]
    count = export_finetune(root, str(tmp_path / 'ft'), queries_per_episode=2)
    examples = read_examples(str(tmp_path / 'ft'))
    assert count == len(examples) == 6
    example = examples[1]
    episode = labelled.load_episodes(root)[0]
    assert example.episode_id == episode.episode_id
    previous, current = example.previous_step, example.step
    expected = protocol.build_composite(
        episode.external[0], episode.external[previous], episode.external[current],
        episode.wrist[0], episode.wrist[previous], episode.wrist[current])
    from PIL import Image
    with Image.open(tmp_path / 'ft' / example.image) as image:
        assert np.array_equal(np.asarray(image), expected)
    # What sole-r1 synth --export-sole-r1 writes: the episodes not kept for evaluation.
    held = {e['episode_id'] for e in labelled.list_episodes(root) if e.get('split') == 'val'}
    export_finetune(root, str(tmp_path / 'train'), queries_per_episode=2, split='train')
    exported = {e.episode_id for e in read_examples(str(tmp_path / 'train'))}
    assert held and exported and not exported & held
    assert example.messages() == protocol.build_messages(example.goal, example.previous_progress)
    assert example.progress == round(float(episode.progress[current]))
    assert example.reasoning.startswith('Between the previous and the current frame')
    parsed = protocol.parse_answer(example.completion())
    assert parsed.valid and parsed.progress == example.progress
    with open(tmp_path / 'ft' / 'dataset.json') as stream:
        assert json.load(stream)['num_examples'] == 6


def test_reasoning_trace_describes_what_the_state_did():
    start = np.zeros(39)
    start[4:7] = [0.0, 0.7, 0.1]
    later = start.copy()
    later[1] = 0.05          # hand 5 cm forward
    later[4:7] = [0.0, 0.65, 0.1]  # drawer pushed 5 cm
    text = reasoning_trace('drawer-close-v3', 'close the drawer', start, later, start, 10, 40)
    assert 'moved about 5 cm forward' in text
    assert 'The drawer moved about 5 cm' in text
    assert 'more of the task is done' in text and '60%' in text
    still = reasoning_trace('drawer-close-v3', 'close the drawer', later, later, start, 40, 40)
    assert 'barely moved' in still and 'has not changed' in still


def test_an_episode_is_the_same_whichever_episode_its_worker_ran_before():
    """Workers take episodes in any order; (seed, task, index) alone must decide an episode.

    A worker's robot used to be built with the seed of the first episode it ran, and that seed
    picks Meta-World's set of variations: the same episode got another object position when a
    different episode reached the worker first.
    """
    from sole_r1_ros.synth.generate import _Worker, EpisodeSpec, rollout

    config = SynthConfig(tasks=('push-v3',), episodes_per_task=3, image_size=16, max_steps=12)
    first, second = EpisodeSpec('push-v3', 0, config), EpisodeSpec('push-v3', 2, config)
    alone, after = _Worker(), _Worker()
    try:
        _, arrays_alone = rollout(alone.robot_for(second), second)
        rollout(after.robot_for(first), first)
        _, arrays_after = rollout(after.robot_for(second), second)
    finally:
        alone.close()
        after.close()
    for name in ('state', 'actions', 'step_progress', 'external', 'wrist'):
        np.testing.assert_array_equal(arrays_alone[name], arrays_after[name], err_msg=name)


def test_no_synthesized_puck_is_pulled_back_in_a_scene_that_renders_as_push_back():
    """Push-back is held out, yet its very motion was trained in scenes rendering as its own.

    Pick-place's puck pulled back, a wrong-way push, and the undoing of pick-place and
    push-wall.
    """
    from sole_r1_ros.synth import object_motion, undo
    for task in ('push-v3', 'push-wall-v3', 'pick-place-v3', 'pick-place-wall-v3'):
        for spec in object_motion.episode_specs(task):
            for seed in range(20):
                moved = object_motion.moved_direction(spec, np.random.default_rng(seed))
                assert moved != 'back', (spec, moved)
    assert not {'push-wall-v3', 'pick-place-v3', 'pick-place-wall-v3'} & set(undo.UNDO_GOALS)


def test_validation_episodes_never_share_a_variation_with_the_tasks_training_episodes():
    """A shared variation made a validation expert identical to a training one, frame for frame.

    About 15 % of the validation frames of the compact model's data had been trained on.
    """
    from sole_r1_ros.synth.generate import variation_pools
    from sole_r1_ros.synth.object_motion import episode_specs as motion_specs
    from sole_r1_ros.sim.tasks import TASK_GOALS

    config = SynthConfig(tasks=tuple(sorted(TASK_GOALS)), episodes_per_task=30)
    for task in config.tasks:
        specs = [EpisodeSpec(task, index, config) for index in range(30)]
        val = [s.variation for s in specs if s.split == 'val']
        train = [s.variation for s in specs if s.split == 'train']
        assert len(val) == 6 and not set(val) & set(train), task
        assert len(set(val)) == 6 and len(set(train)) == 24, task    # each its own variation
        assert all(0 <= v < 50 for v in val + train)
        val_pool, _ = variation_pools(task, 0)
        assert set(val) <= set(val_pool)
    # Object motion films training scenes: only on variations the task never validates on.
    for scene in ('push-v3', 'drawer-close-v3'):
        val_pool = set(variation_pools(scene, 0)[0])
        try:
            specs = motion_specs(scene)
        except ValueError:      # not an object-motion scene
            continue
        _, train_pool = variation_pools(scene, 0)
        assert not {train_pool[s.index % len(train_pool)] for s in specs} & val_pool


def test_every_behaviour_is_validated_across_the_tasks():
    """Validation positions used to be the same for every task, and never fell on a reversal."""
    from sole_r1_ros.sim.tasks import TASK_GOALS

    config = SynthConfig(tasks=tuple(sorted(TASK_GOALS)), episodes_per_task=30)
    validated = {EpisodeSpec(task, index, config).behaviour for task in config.tasks
                 for index in range(30) if EpisodeSpec(task, index, config).split == 'val'}
    assert validated == set(BEHAVIOURS)
    for val_per_block in (1, 3, 5, 10):
        config = SynthConfig(tasks=('push-v3',), episodes_per_task=30,
                             val_per_block=val_per_block)
        specs = [EpisodeSpec('push-v3', index, config) for index in range(30)]
        assert sum(s.split == 'val' for s in specs) == 3 * val_per_block
        val = [s.variation for s in specs if s.split == 'val']
        train = [s.variation for s in specs if s.split == 'train']
        assert not set(val) & set(train)


def test_a_rollout_resets_on_its_specs_variation():
    config = SynthConfig(tasks=('push-v3',), episodes_per_task=3, image_size=16, max_steps=4)
    robot = MetaWorldRobot(SimConfig(task='push-v3', image_width=16, image_height=16,
                                     max_episode_steps=4))
    try:
        for index in range(3):
            spec = EpisodeSpec('push-v3', index, config)
            meta, _ = rollout(robot, spec)
            assert meta['variation'] == robot.variation == spec.variation
        with pytest.raises(ValueError, match='variation'):
            robot.reset(variation=50)
    finally:
        robot.close()

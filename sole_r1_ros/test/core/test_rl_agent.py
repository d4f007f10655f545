"""DrQ-v2 agent: updates train the networks, acting is bounded, the schedule and UTD hold."""
import copy
import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip('torch')
F = torch.nn.functional

from sole_r1_ros.rl.config import DrQConfig  # noqa: E402
from sole_r1_ros.rl.drq import DrQAgent  # noqa: E402
from sole_r1_ros.rl import networks  # noqa: E402
from sole_r1_ros.rl.networks import random_shift  # noqa: E402
from sole_r1_ros.rl.replay import Batch  # noqa: E402

torch.set_num_threads(1)
STATE_DIM, ACTION_DIM = 5, 2
TINY = dict(hidden_dim=32, feature_dim=16, batch_size=16, seed_steps=0, image_size=24,
            encoder_channels=4, encoder_strides=(2, 1, 1, 1), image_keys=('external', 'wrist'))


def make_agent(variant: str, **kwargs) -> DrQAgent:
    return DrQAgent(DrQConfig(variant=variant, **{**TINY, **kwargs}), STATE_DIM, ACTION_DIM)


def random_batch(agent: DrQAgent, rng: np.random.Generator, size: int = 16) -> Batch:
    images = next_images = None
    if agent.config.variant == 'pixels':
        shape = (size, 2, 3, 24, 24)
        images = rng.integers(0, 256, shape, dtype=np.uint8)
        next_images = rng.integers(0, 256, shape, dtype=np.uint8)
    return Batch(state=rng.normal(size=(size, STATE_DIM)).astype(np.float32), images=images,
                 action=rng.uniform(-1, 1, (size, ACTION_DIM)).astype(np.float32),
                 reward=rng.uniform(0, 1, size).astype(np.float32),
                 discount=np.full(size, 0.97, np.float32),
                 next_state=rng.normal(size=(size, STATE_DIM)).astype(np.float32),
                 next_images=next_images)


def observation(agent: DrQAgent, rng: np.random.Generator) -> dict[str, np.ndarray]:
    obs = {'state': rng.normal(size=STATE_DIM).astype(np.float32)}
    if agent.config.variant == 'pixels':
        for key in agent.config.image_keys:
            obs[key] = rng.integers(0, 256, (3, 24, 24), dtype=np.uint8)
    return obs


def snapshot(agent: DrQAgent) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, module in agent._modules().items()
            if isinstance(module, torch.nn.Module)
            for name, value in module.state_dict().items()}


@pytest.mark.parametrize('variant', ['state', 'pixels'])
def test_update_changes_every_network_and_returns_finite_metrics(variant):
    agent = make_agent(variant)
    before = {
        'actor': [p.clone() for p in agent.actor.parameters()],
        'critic': [p.clone() for p in agent.critic.parameters()],
        'target': [p.clone() for p in agent.critic_target.parameters()],
        'encoder': [p.clone() for p in agent.encoder.parameters()] if agent.encoder else [],
    }
    metrics = agent.update(random_batch(agent, np.random.default_rng(0)))
    assert set(metrics) >= {'critic_loss', 'actor_loss', 'q1', 'target_q', 'exploration_std'}
    assert all(np.isfinite(v) for v in metrics.values())
    after = {'actor': agent.actor.parameters(), 'critic': agent.critic.parameters(),
             'target': agent.critic_target.parameters(),
             'encoder': agent.encoder.parameters() if agent.encoder else []}
    for name, params in after.items():
        changed = [not torch.equal(a, b) for a, b in zip(before[name], params)]
        assert any(changed) or not before[name], name
    assert (agent.encoder is None) == (variant == 'state')
    assert agent.updates == 1


def test_critic_regresses_to_a_constant_reward():
    agent = make_agent('state', lr=3e-3)
    batch = random_batch(agent, np.random.default_rng(0), 32)
    batch = batch._replace(reward=np.full(32, 0.7, np.float32), discount=np.zeros(32, np.float32))
    for _ in range(100):
        metrics = agent.update(batch)
    assert metrics['q1'] == pytest.approx(0.7, abs=0.05)


def test_actor_climbs_the_critic_towards_the_rewarded_action():
    """One-step bandit r = a_0 - a_1 (no bootstrap): mu must move from ~0 to about (1, -1)."""
    agent = make_agent('state', lr=1e-3)
    rng = np.random.default_rng(0)
    obs = observation(agent, rng)
    assert np.all(np.abs(agent.act(obs, explore=False)) < 0.8)
    for _ in range(100):
        batch = random_batch(agent, rng, 32)
        reward = (batch.action[:, 0] - batch.action[:, 1]).astype(np.float32)
        agent.update(batch._replace(reward=reward, discount=np.zeros(32, np.float32)))
    action = agent.act(obs, explore=False)
    assert action[0] > 0.8 and action[1] < -0.8


def test_the_smoothed_actions_bound_passes_the_actors_gradient_through():
    """As drqv2's TruncatedNormal._clamp: a sample past the bound still tells mu which way."""
    agent = make_agent('state')
    mu = torch.full((2000, ACTION_DIM), 0.95, requires_grad=True)
    action = agent._smoothed_action(mu, sigma=1.0)
    assert float(action.detach().abs().max()) <= 1.0
    action.sum().backward()
    assert bool((mu.grad == 1.0).all())   # a plain clamp zeroes it for about half of them


def _replay_noise(generator: torch.Generator, shape: tuple, sigma: float,
                  clip: float) -> torch.Tensor:
    """The target-smoothing noise of Eqs. 1 and 3, drawn as ``_smoothed_action`` draws it."""
    return (torch.randn(shape, generator=generator) * sigma).clamp(-clip, clip)


def _bootstrapped_agent_and_batch(**kwargs):
    """A state agent with large noise clipped small, and a batch that bootstraps (discount > 0)."""
    agent = make_agent('state', std_init=2.0, std_final=2.0, std_clip=0.2, **kwargs)
    batch = random_batch(agent, np.random.default_rng(11))
    return agent, batch._replace(discount=np.full(16, 0.9, np.float32))


def test_the_critic_regresses_to_the_clipped_double_q_target_of_smoothed_next_actions():
    """Eqs. 1-2 by hand: y = r + gamma^n min(Q_bar_1, Q_bar_2)(s', clip(mu(s') + clip(eps))).

    Every learning test bootstraps nothing (discount 0): a max for the min, the next action
    without its noise or its noise unclipped went unseen.
    """
    agent, batch = _bootstrapped_agent_and_batch()
    generator = torch.Generator()
    generator.set_state(agent._update_gen.get_state())
    critic = copy.deepcopy(agent.critic)
    with torch.no_grad():
        next_state = torch.from_numpy(batch.next_state)
        mu = agent.actor(next_state, None)
        noise = _replay_noise(generator, tuple(mu.shape), 2.0, 0.2)
        next_action = (mu + noise).clamp(-1.0, 1.0)
        target_q1, target_q2 = agent.critic_target(next_state, None, next_action)
        target = (torch.from_numpy(batch.reward)
                  + torch.from_numpy(batch.discount) * torch.min(target_q1, target_q2))
        q1, q2 = critic(torch.from_numpy(batch.state), None, torch.from_numpy(batch.action))
        loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
    assert not torch.allclose(target_q1, target_q2, atol=1e-2)   # the min tells them apart
    assert bool((noise.abs() == 0.2).any())                      # the clip bites
    metrics = agent.update(batch)
    assert metrics['target_q'] == pytest.approx(float(target.mean()), rel=1e-5, abs=1e-6)
    assert metrics['critic_loss'] == pytest.approx(float(loss), rel=1e-5, abs=1e-7)


def test_the_actor_climbs_the_smaller_of_the_two_critics():
    """Eq. 3: L_actor = -E[min(Q_1, Q_2)(s, clip(mu(s) + clip(eps)))], after the critic step.

    Climbing Q_1 alone brings back the overestimation the twin critics are there to curb.
    """
    agent, batch = _bootstrapped_agent_and_batch()
    generator = torch.Generator()
    generator.set_state(agent._update_gen.get_state())
    actor = copy.deepcopy(agent.actor)
    state = torch.from_numpy(batch.state)
    _replay_noise(generator, (16, ACTION_DIM), 2.0, 0.2)   # the critic's target draws first
    noise = _replay_noise(generator, (16, ACTION_DIM), 2.0, 0.2)
    metrics = agent.update(batch)
    with torch.no_grad():   # agent.critic is now the critic the actor step used
        q1, q2 = agent.critic(state, None, (actor(state, None) + noise).clamp(-1.0, 1.0))
    expected = -float(torch.min(q1, q2).mean())
    assert abs(expected - (-float(q1.mean()))) > 1e-3   # Q_1 alone gives another loss
    assert metrics['actor_loss'] == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_the_target_critic_moves_by_tau_towards_the_critic_each_update():
    """Eq. 4: theta_bar <- tau theta + (1 - tau) theta_bar; a copy (tau 1) makes no target."""
    agent, batch = _bootstrapped_agent_and_batch(critic_target_tau=0.25)
    before = [p.clone() for p in agent.critic_target.parameters()]
    agent.update(batch)
    moved = False
    for old, new, online in zip(before, agent.critic_target.parameters(),
                                agent.critic.parameters()):
        torch.testing.assert_close(new, old + 0.25 * (online - old), rtol=1e-5, atol=1e-6)
        moved = moved or not torch.equal(online, old)
    assert moved


def test_the_smoothing_noise_is_clipped_to_std_clip_whatever_sigma():
    """Target smoothing: eps is clipped to [-c, c] (Eq. 1): sigma 5 moves mu by 0.1 at most."""
    agent = make_agent('state', std_clip=0.1)
    mu = torch.zeros((500, ACTION_DIM))
    action = agent._smoothed_action(mu, sigma=5.0)
    assert float((action - mu).abs().max()) == pytest.approx(0.1)


@pytest.mark.parametrize('variant', ['state', 'pixels'])
def test_actions_are_bounded_and_evaluation_is_deterministic(variant):
    agent = make_agent(variant, seed_steps=3, std_init=5.0, std_final=5.0)
    rng = np.random.default_rng(2)
    obs = observation(agent, rng)
    explored = np.stack([agent.act(obs, explore=True) for _ in range(20)])
    assert explored.shape == (20, ACTION_DIM) and explored.dtype == np.float32
    assert np.all(np.abs(explored) <= 1.0)
    assert np.any(np.abs(explored) == 1.0)   # std 5 saturates
    assert agent.env_steps == 20
    np.testing.assert_array_equal(agent.act(obs, explore=False), agent.act(obs, explore=False))
    assert agent.env_steps == 20


def test_exploration_std_follows_the_linear_schedule():
    agent = make_agent('state', std_init=1.0, std_final=0.2, std_decay_steps=100)
    assert agent.exploration_std(0) == pytest.approx(1.0)
    assert agent.exploration_std(50) == pytest.approx(0.6)
    assert agent.exploration_std(100) == pytest.approx(0.2)
    assert agent.exploration_std(10**6) == pytest.approx(0.2)


def test_updates_due_follows_the_update_to_data_ratio():
    agent = make_agent('state', utd_ratio=0.5)
    assert agent.updates_due(0) == 0
    assert agent.updates_due(7) == 3
    agent.update(random_batch(agent, np.random.default_rng(0)))
    assert agent.updates_due(7) == 2
    assert make_agent('state', utd_ratio=4).updates_due(3) == 12


def test_acting_copy_is_refreshed_every_actor_sync_every_updates():
    agent = make_agent('state', actor_sync_every=2)
    rng = np.random.default_rng(3)
    obs = observation(agent, rng)
    first = agent.act(obs, explore=False)
    agent.update(random_batch(agent, rng))
    np.testing.assert_array_equal(agent.act(obs, explore=False), first)
    agent.update(random_batch(agent, rng))
    assert not np.array_equal(agent.act(obs, explore=False), first)


def test_state_dict_round_trip_restores_networks_optimisers_and_rng_bit_exactly():
    rng = np.random.default_rng(4)
    agent = make_agent('pixels')
    for _ in range(3):
        agent.update(random_batch(agent, rng))
        agent.act(observation(agent, rng), explore=True)
    clone = make_agent('pixels', seed=99)
    clone.load_state_dict(agent.state_dict())
    for name, value in snapshot(agent).items():
        assert torch.equal(value, snapshot(clone)[name]), name
    assert agent.actor_opt.state_dict()['state'][0]['exp_avg'].equal(
        clone.actor_opt.state_dict()['state'][0]['exp_avg'])
    assert (clone.env_steps, clone.updates) == (agent.env_steps, agent.updates)
    batch = random_batch(agent, rng)
    assert agent.update(batch) == clone.update(batch)   # same augmentation and noise draws
    obs = observation(agent, rng)
    np.testing.assert_array_equal(agent.act(obs, explore=True), clone.act(obs, explore=True))


def test_a_resume_with_another_utd_ratio_or_lr_uses_them_from_there_on():
    """Owed updates count from the resume; the optimisers take the new learning rate.

    Counted over the whole run, a lower utd_ratio owed nothing for as long as the old one had
    run ahead (hours at 10 Hz), and the saved optimiser put the old lr back, though the log
    said the field changed.
    """
    rng = np.random.default_rng(5)
    agent = make_agent('state', utd_ratio=1.0)
    for _ in range(8):
        agent.update(random_batch(agent, rng))
    assert agent.updates_due(8) == 0
    slower = make_agent('state', utd_ratio=0.5, lr=1e-5)
    slower.load_state_dict(agent.state_dict())
    assert slower.updates_due(8) == 0 and slower.updates_due(12) == 2   # 0.5 of 4 new steps
    assert {g['lr'] for o in (slower.actor_opt, slower.critic_opt) for g in o.param_groups} == {
        1e-5}
    slower.update(random_batch(slower, rng))
    again = make_agent('state', utd_ratio=0.5, lr=1e-5)   # and resumed again, unchanged
    again.load_state_dict(slower.state_dict())
    assert again.updates_due(12) == 1


def test_load_state_dict_rejects_other_dimensions():
    state = make_agent('state').state_dict()
    other = DrQAgent(DrQConfig(variant='state', **TINY), STATE_DIM + 1, ACTION_DIM)
    with pytest.raises(ValueError, match='dims'):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match='does not fit'):
        make_agent('state', hidden_dim=8).load_state_dict(state)


def test_random_shift_moves_by_at_most_pad_and_repeats_the_border():
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    generator = torch.Generator().manual_seed(0)
    shifted = [random_shift(images, 2, generator) for _ in range(20)]
    assert all(s.shape == images.shape for s in shifted)
    assert any(not torch.equal(s, images) for s in shifted)
    assert torch.equal(random_shift(images, 0, generator), images)
    # every output pixel is some input pixel of the same image and channel
    for s in shifted:
        for n in range(2):
            for c in range(3):
                assert set(s[n, c].flatten().tolist()) <= set(images[n, c].flatten().tolist())


@pytest.mark.parametrize('field, value', [
    ('variant', 'rgb'), ('lr', 0.0), ('discount', 1.5), ('n_step', 0), ('std_final', 2.0),
    ('utd_ratio', -1.0), ('encoder_strides', ()), ('image_keys', ()), ('precision', 'fp16'),
    ('channels_last', 1)])
def test_invalid_config_names_the_field(field, value):
    kwargs = {'variant': 'pixels', field: value}
    with pytest.raises(ValueError, match=field.split('_')[0]):
        DrQConfig(**kwargs)


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DrQConfig().lr = 1.0


# ------------------------------------------------------------------ CPU speed options


@pytest.mark.parametrize('has_bf16, expected', [(False, 'float32'), (True, 'bfloat16')])
def test_auto_precision_uses_bfloat16_only_where_the_cpu_has_it(monkeypatch, has_bf16, expected):
    monkeypatch.setattr(networks, 'cpu_has_bf16', lambda: has_bf16)
    assert make_agent('pixels', precision='auto').precision == expected
    assert make_agent('pixels', precision='float32').precision == 'float32'
    assert make_agent('pixels', precision='bfloat16').precision == 'bfloat16'
    assert make_agent('state', precision='bfloat16').precision == 'float32'   # no encoder


def test_bf16_is_read_from_the_cpu_flags():
    xeon = 'processor\t: 0\nflags\t\t: fpu avx512f amx_bf16 amx_tile amx_int8\n'
    epyc = 'flags\t\t: fpu avx512f avx512_bf16 avx512_vnni\n'
    old = 'flags\t\t: fpu sse4_2 avx2 avx512f\nbugs\t\t: avx512_bf16_is_not_a_flag_here\n'
    assert networks.bf16_in_cpuinfo(xeon) and networks.bf16_in_cpuinfo(epyc)
    assert not networks.bf16_in_cpuinfo(old) and not networks.bf16_in_cpuinfo('')
    import doctest
    assert doctest.testmod(networks).failed == 0


def test_bfloat16_update_is_finite_and_close_to_float32():
    """Same seed and batch: bf16 autocast changes losses and actions only a little.

    Weights, optimiser state and the returned features stay float32.
    """
    rng = np.random.default_rng(5)
    agents = {p: make_agent('pixels', precision=p) for p in ('float32', 'bfloat16')}
    batches = [random_batch(agents['float32'], rng) for _ in range(3)]
    obs = observation(agents['float32'], rng)
    metrics = {p: [a.update(b) for b in batches] for p, a in agents.items()}
    for m32, m16 in zip(metrics['float32'], metrics['bfloat16']):
        assert all(np.isfinite(v) for v in m16.values())
        for key in ('critic_loss', 'actor_loss', 'q1', 'target_q'):
            assert m16[key] == pytest.approx(m32[key], rel=0.05, abs=0.02), key
    actions = {p: a.act(obs, explore=False) for p, a in agents.items()}
    np.testing.assert_allclose(actions['bfloat16'], actions['float32'], atol=0.03)
    agent = agents['bfloat16']
    assert all(p.dtype == torch.float32 for p in agent.encoder.parameters())
    assert all(v.dtype == torch.float32 for state in agent.encoder_opt.state.values()
               for v in state.values() if v.is_floating_point())
    views = torch.from_numpy(random_batch(agent, rng).images)
    assert agent.encoder(views).dtype == torch.float32


def test_channels_last_changes_the_layout_not_the_maths():
    rng = np.random.default_rng(6)
    agents = [make_agent('pixels', precision='float32', channels_last=c) for c in (True, False)]
    batch = random_batch(agents[0], rng)
    first, second = (a.update(batch) for a in agents)
    for key, value in first.items():
        assert second[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key


def test_one_update_encodes_the_observation_once_and_the_next_one_once():
    agent = make_agent('pixels')
    calls = []
    agent.encoder.register_forward_hook(lambda module, args, out: calls.append(
        torch.is_grad_enabled()))
    agent.update(random_batch(agent, np.random.default_rng(7)))
    assert calls == [True, False]   # h with gradients for the critic; next h without


@pytest.mark.parametrize('precision', ['float32', 'bfloat16'])
def test_pixels_agent_learns_which_action_the_image_rewards(precision):
    """A bandit (discount 0) whose only cue is the image.

    r = a_0 when the views are bright and -a_0 when dark; proprioception is zero. mu_0(bright)
    must climb and mu_0(dark) fall.
    """
    agent = make_agent('pixels', precision=precision, lr=1e-3, aug_pad=1)
    rng = np.random.default_rng(8)

    def views(bright: np.ndarray) -> np.ndarray:
        level = np.where(bright, 200, 40)[:, None, None, None, None]
        noise = rng.integers(0, 30, (len(bright), 2, 3, 24, 24))
        return (level + noise).astype(np.uint8)

    for _ in range(120):
        batch = random_batch(agent, rng, 32)
        bright = rng.random(32) < 0.5
        reward = np.where(bright, 1.0, -1.0) * batch.action[:, 0]
        agent.update(batch._replace(
            state=np.zeros_like(batch.state), images=views(bright), next_images=views(bright),
            reward=reward.astype(np.float32), discount=np.zeros(32, np.float32)))
    for bright, sign in ((True, 1.0), (False, -1.0)):
        image = views(np.array([bright]))[0]
        obs = {'state': np.zeros(STATE_DIM, np.float32), 'external': image[0],
               'wrist': image[1]}
        assert sign * agent.act(obs, explore=False)[0] > 0.5, (precision, bright)

"""DrQ-v2 agent (Yarats et al. 2021, "Mastering Visual Continuous Control").

DDPG with n-step returns, clipped double Q, target smoothing, scheduled exploration noise and
random-shift image augmentation; plus a state-only variant without the encoder.

Equations cited below, with h = f_xi(aug(o)) the encoded observation and sigma(t) the schedule:

- (1) y = sum_{i<n} gamma^i r_{t+i} + gamma^n min_k Q_bar_k(h_{t+n}, a'),
  a' = clip(mu(h_{t+n}) + clip(eps, -c, c), -1, 1), eps ~ N(0, sigma(t)^2)
- (2) L_critic = sum_k E[(Q_k(h_t, a_t) - y)^2]   (critic and encoder)
- (3) L_actor = -E[min_k Q_k(h_t, a)], a = clip(mu(h_t) + clip(eps, -c, c), -1, 1), h detached
- (4) theta_bar <- tau theta + (1 - tau) theta_bar
- (5) sigma(t) = std_init + (std_final - std_init) * min(1, t / std_decay_steps)

Numbers: with ``precision`` bfloat16 the representation (f_xi and the Linear of each trunk) runs
under CPU autocast; the policy and Q MLPs, the targets of Eq. 1, the losses, the weights and the
optimiser state stay float32 (a bfloat16 Q near 50 would be rounded to 0.25, coarser than one
step's reward). ``act`` runs in float32.

Threads: ``act`` (the actor thread) runs a private copy of the encoder and actor under a small
lock; ``update`` (the learner thread) trains the originals and refreshes that copy every
``actor_sync_every`` updates, so acting never waits for a gradient step.
"""
import copy
import dataclasses
import logging
import math
import threading
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from sole_r1_ros.rl.config import DrQConfig
from sole_r1_ros.rl.networks import Actor, Critic, Encoder, random_shift, set_bf16, use_bf16
from sole_r1_ros.rl.replay import Batch, STATE_KEY

_LOG = logging.getLogger(__name__)


class DrQAgent:
    """DrQ-v2 learner and policy; one ``update`` is one gradient step, loops live outside."""

    def __init__(self, config: DrQConfig, state_dim: int, action_dim: int) -> None:
        """Build networks and optimisers for D-dim proprioception and A-dim actions in [-1, 1]."""
        if state_dim < 1 or action_dim < 1:
            raise ValueError(f'state_dim and action_dim must be >= 1, got {state_dim}, '
                             f'{action_dim}')
        self.config = config
        self.state_dim, self.action_dim = int(state_dim), int(action_dim)
        self._pixels = config.variant == 'pixels'
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self._build_networks()
        self._update_gen = torch.Generator().manual_seed(config.seed + 1)
        self._act_gen = torch.Generator().manual_seed(config.seed + 2)
        self._np_rng = np.random.default_rng(config.seed + 3)
        self._act_lock = threading.Lock()
        self._env_steps = 0
        self._updates = 0
        # (learning env steps, updates) the owed updates count from: moved when a resume
        # changes utd_ratio, which counted over the whole run owed a burst, or nothing for hours
        self._update_base: tuple[int, int] | None = (0, 0)

    def _build_networks(self) -> None:
        cfg = self.config
        self._bf16 = self._pixels and use_bf16(cfg.precision)
        if self._pixels:
            self.encoder: Encoder | None = Encoder(
                len(cfg.image_keys), cfg.encoder_channels, cfg.image_size, cfg.encoder_strides,
                bf16=self._bf16, channels_last=cfg.channels_last)
            _LOG.info('DrQ representation in %s, convolutions %s', self.precision,
                      'channels-last' if cfg.channels_last else 'NCHW')
            repr_dim, extra_dim = self.encoder.repr_dim, self.state_dim
        else:
            self.encoder, repr_dim, extra_dim = None, self.state_dim, 0
        dims = (repr_dim, extra_dim, cfg.feature_dim, cfg.hidden_dim, self.action_dim)
        self.actor = Actor(*dims, bf16=self._bf16)
        self.critic = Critic(*dims, bf16=self._bf16)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        # fused Adam: one kernel per step instead of a Python loop over parameters (CPU-bound)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr, fused=True)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr, fused=True)
        self.encoder_opt = (torch.optim.Adam(self.encoder.parameters(), lr=cfg.lr, fused=True)
                            if self.encoder is not None else None)
        self._critic_params = list(self.critic.parameters())
        self._target_params = list(self.critic_target.parameters())
        # the acting copy (see the module docstring), in float32: at batch 1 autocast's
        # per-call weight casts cost more than bfloat16 saves (bench/bench_drq.py)
        self._act_actor = set_bf16(copy.deepcopy(self.actor), False).requires_grad_(False)
        self._act_encoder = (set_bf16(copy.deepcopy(self.encoder), False).requires_grad_(False)
                             if self.encoder is not None else None)

    # ---------------------------------------------------------------------------- acting

    @property
    def precision(self) -> str:
        """The resolved ``precision`` of the representation: 'bfloat16' or 'float32'."""
        return 'bfloat16' if self._bf16 else 'float32'

    @property
    def env_steps(self) -> int:
        """Exploring ``act`` calls so far (the t of the noise schedule, Eq. 5)."""
        return self._env_steps

    @property
    def updates(self) -> int:
        """Gradient updates so far."""
        return self._updates

    def exploration_std(self, step: int | None = None) -> float:
        """sigma(t) of Eq. 5 at environment step ``step`` (default: now)."""
        cfg = self.config
        t = self._env_steps if step is None else step
        frac = 1.0 if cfg.std_decay_steps == 0 else min(1.0, t / cfg.std_decay_steps)
        return cfg.std_init + (cfg.std_final - cfg.std_init) * frac

    def act(self, obs: Mapping[str, np.ndarray], explore: bool) -> np.ndarray:
        """Return an action in [-1, 1]^A for one observation (``prepare_observation`` format).

        ``explore=True`` counts an environment step; it acts uniformly at random for the first
        ``seed_steps`` steps, then adds N(0, sigma(t)^2) noise to mu (Eq. 5). ``explore=False``
        returns mu (evaluation). Never waits for ``update``.
        """
        with self._act_lock:
            if explore and self._env_steps < self.config.seed_steps:
                action = self._np_rng.uniform(-1.0, 1.0, self.action_dim)
            else:
                with torch.no_grad():
                    state = torch.as_tensor(np.asarray(obs[STATE_KEY], np.float32))[None]
                    h, extra = self._features(self._act_encoder, obs, state)
                    mu = self._act_actor(h, extra)[0]
                    if explore:
                        eps = torch.randn(mu.shape, generator=self._act_gen)
                        mu = mu + self.exploration_std() * eps
                    action = mu.clamp(-1.0, 1.0).numpy()
            if explore:
                self._env_steps += 1
        return np.asarray(action, np.float32)

    def _features(self, encoder: Encoder | None, obs: Mapping[str, np.ndarray],
                  state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if encoder is None:
            return state, None
        views = np.stack([obs[key] for key in self.config.image_keys])[None]
        return encoder(torch.from_numpy(views)), state

    # --------------------------------------------------------------------------- learning

    def updates_due(self, learning_env_steps: int) -> int:
        """Return how many updates ``utd_ratio`` still owes.

        ``learning_env_steps`` counts environment steps since learning started; the learner
        calls ``update`` this many times.
        """
        if self._update_base is None:   # utd_ratio changed at a resume: count from here
            self._update_base = (int(learning_env_steps), self._updates)
        steps, updates = self._update_base
        return max(0, math.floor((learning_env_steps - steps) * self.config.utd_ratio)
                   - (self._updates - updates))

    def update(self, batch: Batch) -> dict[str, float]:
        """One DrQ-v2 step on ``batch``: critic (Eqs. 1-2), actor (Eq. 3), targets (Eq. 4).

        Returns finite floats: critic_loss, q1, target_q, batch_reward, exploration_std, and
        actor_loss on steps that update the actor.
        """
        cfg = self.config
        state = torch.from_numpy(batch.state)
        next_state = torch.from_numpy(batch.next_state)
        action = torch.from_numpy(batch.action)
        reward = torch.from_numpy(batch.reward)
        discount = torch.from_numpy(batch.discount)
        sigma = self.exploration_std()
        h = self._encode(batch.images, state)
        with torch.no_grad():
            next_h = self._encode(batch.next_images, next_state)
        metrics = self._update_critic(h, state, action, reward, discount, next_h, next_state,
                                      sigma)
        self._updates += 1
        if self._updates % cfg.actor_update_every == 0:
            metrics.update(self._update_actor(h.detach(), state, sigma))
        self._soft_update_target()
        if self._updates % cfg.actor_sync_every == 0:
            self.sync_acting_copy()
        metrics['exploration_std'] = sigma
        return metrics

    def _encode(self, images: np.ndarray | None, state: torch.Tensor) -> torch.Tensor:
        """Encode h = f_xi(aug(o)) for the pixels variant; the state itself otherwise."""
        if self.encoder is None:
            return state
        b, v = images.shape[:2]
        x = torch.from_numpy(images).flatten(0, 1)
        x = random_shift(x, self.config.aug_pad, self._update_gen)
        return self.encoder(x.reshape(b, v, *x.shape[1:]))

    def _extra(self, state: torch.Tensor) -> torch.Tensor | None:
        return state if self._pixels else None

    def _smoothed_action(self, mu: torch.Tensor, sigma: float) -> torch.Tensor:
        """clip(mu + clip(eps, -c, c), -1, 1), eps ~ N(0, sigma^2) (Eqs. 1 and 3).

        The outer clip passes the gradient straight through, as drqv2's
        ``TruncatedNormal._clamp`` does: a plain clamp gives the actor no gradient for a sample
        past the action bound, and near the bound (the gripper at +-1, a large move) that is
        30-50 % of them while sigma is large.
        """
        eps = torch.randn(mu.shape, generator=self._update_gen) * sigma
        eps = eps.clamp(-self.config.std_clip, self.config.std_clip)
        action = mu + eps
        return action - action.detach() + action.detach().clamp(-1.0, 1.0)

    def _update_critic(self, h: torch.Tensor, state: torch.Tensor, action: torch.Tensor,
                       reward: torch.Tensor, discount: torch.Tensor, next_h: torch.Tensor,
                       next_state: torch.Tensor, sigma: float) -> dict[str, float]:
        with torch.no_grad():
            next_extra = self._extra(next_state)
            next_action = self._smoothed_action(self.actor(next_h, next_extra), sigma)
            target_q1, target_q2 = self.critic_target(next_h, next_extra, next_action)
            # Eq. 1: batch.discount is gamma^m (0 after a terminal frame)
            target_q = reward + discount * torch.min(target_q1, target_q2)
        q1, q2 = self.critic(h, self._extra(state), action)
        critic_loss = F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q)  # Eq. 2
        if self.encoder_opt is not None:
            self.encoder_opt.zero_grad(set_to_none=True)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        if self.encoder_opt is not None:
            self.encoder_opt.step()
        return {'critic_loss': critic_loss.item(), 'q1': q1.mean().item(),
                'target_q': target_q.mean().item(), 'batch_reward': reward.mean().item()}

    def _update_actor(self, h: torch.Tensor, state: torch.Tensor,
                      sigma: float) -> dict[str, float]:
        extra = self._extra(state)
        action = self._smoothed_action(self.actor(h, extra), sigma)
        q1, q2 = self.critic(h, extra, action)
        actor_loss = -torch.min(q1, q2).mean()  # Eq. 3
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        return {'actor_loss': actor_loss.item()}

    def _soft_update_target(self) -> None:
        tau = self.config.critic_target_tau
        with torch.no_grad():  # Eq. 4
            torch._foreach_lerp_(self._target_params, self._critic_params, tau)

    def sync_acting_copy(self) -> None:
        """Copy the trained actor (and encoder) into the copy ``act`` uses."""
        pairs = [(self.actor, self._act_actor)]
        if self.encoder is not None:
            pairs.append((self.encoder, self._act_encoder))
        with self._act_lock, torch.no_grad():
            for source, dest in pairs:
                for p_src, p_dst in zip(source.parameters(), dest.parameters()):
                    p_dst.copy_(p_src)

    # ------------------------------------------------------------------------- checkpoint

    def _modules(self) -> dict[str, Any]:
        modules = {'actor': self.actor, 'critic': self.critic,
                   'critic_target': self.critic_target, 'actor_opt': self.actor_opt,
                   'critic_opt': self.critic_opt}
        if self.encoder is not None:
            modules.update(encoder=self.encoder, encoder_opt=self.encoder_opt)
        return modules

    def state_dict(self) -> dict[str, Any]:
        """Return networks, optimisers, counters and generator states.

        Tensors and plain Python only, so ``torch.load(..., weights_only=True)`` reads it. Call
        it between updates (from the learner thread); acting may go on meanwhile.
        """
        with self._act_lock:
            state = {name: copy.deepcopy(module.state_dict())
                     for name, module in self._modules().items()}
            state['counters'] = {'env_steps': self._env_steps, 'updates': self._updates,
                                 'update_base': list(self._update_base or (0, 0))}
            state['rng'] = {'update': self._update_gen.get_state(),
                            'act': self._act_gen.get_state(),
                            'numpy': self._np_rng.bit_generator.state}
        state['config'] = _plain(dataclasses.asdict(self.config))
        state['dims'] = {'state_dim': self.state_dim, 'action_dim': self.action_dim}
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ``state_dict()``.

        Raises:
            ValueError: it came from an agent with other dimensions or network shapes.
        """
        dims = {'state_dim': self.state_dim, 'action_dim': self.action_dim}
        if dict(state['dims']) != dims:
            raise ValueError(f'agent checkpoint has dims {dict(state["dims"])}, expected {dims}')
        try:
            for name, module in self._modules().items():
                module.load_state_dict(state[name])
        except (KeyError, RuntimeError) as exc:
            raise ValueError(f'agent checkpoint does not fit this network: {exc}') from exc
        with self._act_lock:
            self._env_steps = int(state['counters']['env_steps'])
            self._updates = int(state['counters']['updates'])
            self._update_gen.set_state(state['rng']['update'])
            self._act_gen.set_state(state['rng']['act'])
            self._np_rng.bit_generator.state = state['rng']['numpy']
        saved = state.get('config', {})
        mine = _plain(dataclasses.asdict(self.config))
        changed = sorted(k for k in mine if k in saved and saved[k] != mine[k])
        self._update_base = (None if 'utd_ratio' in changed else
                             tuple(state['counters'].get('update_base', (0, 0))))
        for optimizer in (self.actor_opt, self.critic_opt, self.encoder_opt):
            for group in () if optimizer is None else optimizer.param_groups:
                group['lr'] = self.config.lr   # the saved one came back with the state
        if changed:
            _LOG.info('agent restored with changed config fields: %s', changed)
        self.sync_acting_copy()


def _plain(value: Any) -> Any:
    """Tuples to lists, recursively, so the config survives JSON and weights-only loading."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value

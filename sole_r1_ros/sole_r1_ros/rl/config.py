"""Frozen configs of the RL layer: the DrQ-v2 agent and the replay buffer with pending rewards.

These are the only way hyper-parameters enter the core; the learner node declares one ROS
parameter per field (``agent.<field>``, ``replay.<field>`` in ``config/learner.yaml``) and the
bench builds them from flags. ``config_from_mapping`` turns such a dict into a config.
"""
import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, TypeVar

VARIANTS = ('state', 'pixels')
FILL_RULES = ('linear', 'hold')
REWARD_MODES = ('progress', 'delta')

_T = TypeVar('_T')


@dataclass(frozen=True)
class DrQConfig:
    """Hyper-parameters of the DrQ-v2 agent (Yarats et al. 2021).

    Defaults are tuned with ``bench/bench_rl.py`` (state variant, Meta-World reach-v3 and
    drawer-close-v3, action repeat 2, 100-step episodes, reward = progress / 100) on a 2-core CPU;
    the bench runs the pixels variant with ``batch_size=128, utd_ratio=0.5``.
    """

    variant: str = 'state'
    '''Network input: 'state' is an MLP on proprioception / simulator state only (fast
    checks); 'pixels' adds a conv encoder on the camera views, fused with proprioception.'''
    image_keys: tuple[str, ...] = ('external', 'wrist')
    '''Camera views fed to the encoder (pixels variant), in this order.'''
    image_size: int = 64
    '''Square side the views are resized to before storage and encoding [px].'''
    encoder_channels: int = 32
    '''Channels of each 3x3 conv layer of the encoder (DrQ-v2: 32).'''
    encoder_strides: tuple[int, ...] = (2, 2, 1, 1)
    '''Stride of each conv layer; DrQ-v2 uses (2, 1, 1, 1) on 84 px, the second stride of 2
    cuts the encoder's CPU cost about 4x at 64 px.'''
    feature_dim: int = 50
    '''Width of the LayerNorm+tanh trunk that compresses the representation (DrQ-v2: 50).'''
    hidden_dim: int = 256
    '''Width of the two hidden layers of the actor and of each critic (DrQ-v2 pixels: 1024).'''
    lr: float = 3e-4
    '''Adam learning rate of actor, critics and encoder.'''
    discount: float = 0.99
    '''Per-step discount gamma.'''
    n_step: int = 3
    '''Length n of the n-step return (shorter at an episode end).'''
    batch_size: int = 256
    '''Transitions per update.'''
    critic_target_tau: float = 0.01
    '''Polyak rate tau of the target critics: theta_bar <- tau theta + (1 - tau) theta_bar.'''
    std_init: float = 1.0
    '''Exploration std sigma at step 0 of the linear schedule.'''
    std_final: float = 0.1
    '''Exploration std sigma after ``std_decay_steps`` environment steps.'''
    std_decay_steps: int = 20000
    '''Environment steps over which sigma falls linearly from ``std_init`` to ``std_final``.'''
    std_clip: float = 0.3
    '''Clip c of the noise added to actor samples in the losses (target smoothing).'''
    seed_steps: int = 2000
    '''First environment steps act uniformly at random (with ``explore=True``).'''
    utd_ratio: float = 1.0
    '''Update-to-data ratio: gradient updates per environment step (0.5 = every other step).'''
    actor_update_every: int = 1
    '''Update the actor every k-th critic update (1 = DrQ-v2; 2 = TD3's delay).'''
    actor_sync_every: int = 1
    '''Copy the trained actor (and encoder) into the acting copy every k updates.'''
    aug_pad: int = 4
    '''Random-shift augmentation: replicate padding in pixels (DrQ-v2: 4).'''
    seed: int = 0
    '''Seed of the network initialisation, the exploration noise and the augmentation.'''

    def __post_init__(self) -> None:
        _check_choice('variant', self.variant, VARIANTS)
        for name in ('image_size', 'encoder_channels', 'feature_dim', 'hidden_dim', 'n_step',
                     'batch_size', 'actor_update_every', 'actor_sync_every'):
            _check_positive(name, getattr(self, name))
        for name in ('lr', 'utd_ratio'):
            _check_positive(name, getattr(self, name))
        if not 0.0 < self.discount <= 1.0:
            raise ValueError(f'discount must be in (0, 1], got {self.discount}')
        if not 0.0 < self.critic_target_tau <= 1.0:
            raise ValueError(f'critic_target_tau must be in (0, 1], got {self.critic_target_tau}')
        if not 0.0 <= self.std_final <= self.std_init:
            raise ValueError(f'need 0 <= std_final <= std_init, got std_final={self.std_final}, '
                             f'std_init={self.std_init}')
        for name in ('std_decay_steps', 'seed_steps', 'aug_pad', 'std_clip'):
            if getattr(self, name) < 0:
                raise ValueError(f'{name} must be >= 0, got {getattr(self, name)}')
        if self.variant == 'pixels' and not self.image_keys:
            raise ValueError('image_keys must name at least one view for variant=pixels')
        if not self.encoder_strides or min(self.encoder_strides) < 1:
            raise ValueError(f'encoder_strides must be >= 1 each, got {self.encoder_strides}')
        if self.variant == 'pixels' and self.image_size < 16:
            raise ValueError(f'image_size must be >= 16 for the conv encoder, '
                             f'got {self.image_size}')


@dataclass(frozen=True)
class ReplayConfig:
    """Replay buffer whose rewards wait for progress labels from the reward model."""

    capacity: int = 100000
    '''Frames kept (one observation each; oldest are evicted first).'''
    fill: str = 'linear'
    '''How frames between two labelled query frames of an episode get progress: 'linear'
    interpolates between the two labels, 'hold' keeps the earlier label.'''
    max_fill_gap: int = 0
    '''Fill only between labelled frames at most this many steps apart (0 = any gap), so a lost
    query label is bridged by its neighbours only up to this distance.'''
    reward_mode: str = 'progress'
    '''Reward from progress p [%]: 'progress' gives r_t = p_{t+1} / 100 (the SOLE-R1 paper),
    'delta' gives r_t = (p_{t+1} - p_t) / 100.'''
    reward_scale: float = 1.0
    '''Factor applied to the shaped reward.'''
    success_bonus: float = 0.0
    '''Added to r_t when p_{t+1} >= ``success_progress`` (0 disables it).'''
    success_progress: float = 100.0
    '''Progress [%] from which the success bonus is paid.'''
    min_labelled: int = 1000
    '''``ready()`` needs at least this many sampleable (fully labelled) transitions.'''
    min_labelled_share: float = 0.0
    '''``ready()`` also needs this share of stored frames to carry progress [0, 1].'''
    stamp_tolerance_s: float = 1e-3
    '''A label whose stamp differs from its frame's stamp by more is rejected as a mismatch [s].'''
    max_early_labels: int = 10000
    '''Labels that arrive before their frame is inserted wait in a queue of this size.'''
    seed: int = 0
    '''Seed of the sampling generator.'''

    def __post_init__(self) -> None:
        _check_choice('fill', self.fill, FILL_RULES)
        _check_choice('reward_mode', self.reward_mode, REWARD_MODES)
        for name in ('capacity', 'reward_scale'):
            _check_positive(name, getattr(self, name))
        for name in ('success_bonus', 'min_labelled', 'stamp_tolerance_s', 'max_early_labels',
                     'max_fill_gap'):
            if getattr(self, name) < 0:
                raise ValueError(f'{name} must be >= 0, got {getattr(self, name)}')
        if not 0.0 <= self.min_labelled_share <= 1.0:
            raise ValueError(f'min_labelled_share must be in [0, 1], '
                             f'got {self.min_labelled_share}')
        if not 0.0 <= self.success_progress <= 100.0:
            raise ValueError(f'success_progress must be in [0, 100], got {self.success_progress}')


def config_from_mapping(cls: type[_T], values: Mapping[str, Any]) -> _T:
    """Build the config dataclass ``cls`` from a dict such as a YAML section or ROS parameters.

    Lists become tuples where the field is a tuple; unknown keys raise ``ValueError``.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f'{cls.__name__}: unknown field(s) {unknown}')
    kwargs = {}
    for name, value in values.items():
        if isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f'{name} must be one of {choices}, got {value!r}')


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f'{name} must be > 0, got {value}')

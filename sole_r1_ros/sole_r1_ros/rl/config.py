"""Frozen configs of the RL layer: the DrQ-v2 agent and the replay buffer with pending rewards.

These are the only way hyper-parameters enter the core. Each field carries its help text and
limits (``configuration.option``); the learner node declares one ROS parameter per field
(``agent.<field>``, ``replay.<field>`` in ``config/learner.yaml``) and the bench builds the same
classes from flags with ``configuration.from_mapping``.
"""
from dataclasses import dataclass

from sole_r1_ros.configuration import option, validate

VARIANTS = ('state', 'pixels')
PRECISIONS = ('auto', 'float32', 'bfloat16')
FILL_RULES = ('linear', 'hold')
REWARD_MODES = ('progress', 'delta')

# Every field needs a restart of the learner (the networks and buffer are built once).
_RO = {'read_only': True}


@dataclass(frozen=True)
class DrQConfig:
    """Hyper-parameters of the DrQ-v2 agent (Yarats et al. 2021).

    Defaults are tuned with ``bench/bench_rl.py`` (state variant, Meta-World reach-v3 and
    drawer-close-v3, action repeat 2, 100-step episodes, reward = progress / 100) on a 2-core CPU;
    the bench runs the pixels variant with ``batch_size=128, utd_ratio=0.5``.
    """

    variant: str = option('state', "network input: 'state' is an MLP on the state vector only; "
                          "'pixels' adds a conv encoder on the camera views, fused with "
                          'proprioception', choices=VARIANTS, **_RO)
    image_keys: tuple[str, ...] = option(('external', 'wrist'), 'camera views fed to the '
                                         'encoder (pixels variant), in this order', **_RO)
    image_size: int = option(64, 'square side the views are resized to before storage and '
                             'encoding [px]', range=(16, 512), **_RO)
    encoder_channels: int = option(32, 'channels of each 3x3 conv layer of the encoder '
                                   '(DrQ-v2: 32)', range=(1, 1024), **_RO)
    encoder_strides: tuple[int, ...] = option(
        (2, 2, 1, 1), 'stride of each conv layer; DrQ-v2 uses (2, 1, 1, 1) on 84 px, a second '
        "stride of 2 cuts the encoder's CPU cost about 4x at 64 px", range=(1, 8), **_RO)
    feature_dim: int = option(50, 'width of the LayerNorm+tanh trunk that compresses the '
                              'representation (DrQ-v2: 50)', range=(1, 4096), **_RO)
    precision: str = option(
        'auto', 'number format of the pixel representation (conv encoder and trunk Linear): '
        "'bfloat16' runs it under CPU autocast, 'float32' never does, 'auto' picks bfloat16 "
        'exactly where the CPU computes it natively (x86 avx512_bf16 or amx_bf16: about 1.7x the '
        'updates/s there, slower elsewhere); policy and Q MLPs, TD targets, losses, weights and '
        'optimiser state stay float32', choices=PRECISIONS, **_RO)
    channels_last: bool = option(True, 'keep encoder weights and activations channels-last '
                                 '(NHWC), the layout x86 oneDNN convolutions run fastest',
                                 **_RO)
    hidden_dim: int = option(256, 'width of the two hidden layers of the actor and of each '
                             'critic (DrQ-v2 pixels: 1024)', range=(1, 8192), **_RO)
    lr: float = option(3e-4, 'Adam learning rate of actor, critics and encoder',
                       range=(1e-9, 1.0), **_RO)
    discount: float = option(0.99, 'per-step discount gamma', range=(1e-6, 1.0), **_RO)
    n_step: int = option(3, 'length n of the n-step return (shorter at an episode end)',
                         range=(1, 100), **_RO)
    batch_size: int = option(256, 'transitions per update', range=(1, 65536), **_RO)
    critic_target_tau: float = option(0.01, 'Polyak rate tau of the target critics: '
                                      'theta_bar <- tau theta + (1 - tau) theta_bar',
                                      range=(1e-6, 1.0), **_RO)
    std_init: float = option(1.0, 'exploration std sigma at step 0 of the linear schedule',
                             range=(0.0, 10.0), **_RO)
    std_final: float = option(0.1, 'exploration std sigma after std_decay_steps environment '
                              'steps', range=(0.0, 10.0), **_RO)
    std_decay_steps: int = option(20000, 'environment steps over which sigma falls linearly '
                                  'from std_init to std_final', range=(0, 10**9), **_RO)
    std_clip: float = option(0.3, 'clip c of the noise added to actor samples in the losses '
                             '(target smoothing)', range=(0.0, 10.0), **_RO)
    seed_steps: int = option(2000, 'first environment steps act uniformly at random',
                             range=(0, 10**9), **_RO)
    utd_ratio: float = option(1.0, 'update-to-data ratio: gradient updates per environment '
                              'step (0.5 = every other step)', range=(1e-6, 1000.0), **_RO)
    actor_update_every: int = option(1, 'update the actor every k-th critic update (1 = '
                                     "DrQ-v2; 2 = TD3's delay)", range=(1, 1000), **_RO)
    actor_sync_every: int = option(1, 'copy the trained actor (and encoder) into the acting '
                                   'copy every k updates', range=(1, 100000), **_RO)
    aug_pad: int = option(4, 'random-shift augmentation: replicate padding (DrQ-v2: 4) [px]',
                          range=(0, 64), **_RO)
    seed: int = option(0, 'seed of the network initialisation, the exploration noise and the '
                       'augmentation', range=(0, 2**31 - 1), **_RO)

    def __post_init__(self) -> None:
        validate(self)
        if self.std_final > self.std_init:
            raise ValueError(f'DrQConfig: need std_final <= std_init, got std_final='
                             f'{self.std_final}, std_init={self.std_init}')
        if self.variant == 'pixels' and not self.image_keys:
            raise ValueError('DrQConfig.image_keys must name at least one view for '
                             'variant=pixels')
        if not self.encoder_strides:
            raise ValueError('DrQConfig.encoder_strides must name at least one layer')


@dataclass(frozen=True)
class ReplayConfig:
    """Replay buffer whose rewards wait for progress labels from the reward model.

    It owns progress -> reward shaping (``reward_mode``, ``reward_scale``, ``success_bonus``):
    rewards are computed from the stored progress when a batch is sampled.
    """

    capacity: int = option(100000, 'frames kept (one observation each; oldest evicted first)',
                           range=(1, 10**9), **_RO)
    fill: str = option('linear', 'how frames between two labelled query frames get progress: '
                       "'linear' interpolates, 'hold' keeps the earlier label",
                       choices=FILL_RULES, **_RO)
    max_fill_gap: int = option(0, 'fill only between labelled frames at most this many steps '
                               'apart (0 = any gap), so a lost label is bridged only so far',
                               range=(0, 10**9), **_RO)
    reward_mode: str = option('progress', "reward from progress p [%]: 'progress' gives "
                              "r_t = p_{t+1} / 100 (the SOLE-R1 paper), 'delta' gives "
                              'r_t = (p_{t+1} - p_t) / 100', choices=REWARD_MODES, **_RO)
    reward_scale: float = option(1.0, 'factor applied to the shaped reward',
                                 range=(1e-9, 1e6), **_RO)
    success_bonus: float = option(0.0, 'added to r_t when p_{t+1} >= success_progress '
                                  '(0 disables it)', range=(0.0, 1e6), **_RO)
    success_progress: float = option(100.0, 'progress from which the success bonus is paid '
                                     '[%]', range=(0.0, 100.0), **_RO)
    min_labelled: int = option(1000, 'learning starts once this many transitions are fully '
                               'labelled (sampleable)', range=(0, 10**9), **_RO)
    min_labelled_share: float = option(0.0, 'learning also needs this share of stored frames '
                                       'to carry progress', range=(0.0, 1.0), **_RO)
    stamp_tolerance_s: float = option(1e-3, "a label whose stamp differs from its frame's by "
                                      'more is rejected as a mismatch [s]', range=(0.0, 3600.0),
                                      **_RO)
    max_early_labels: int = option(10000, 'labels that arrive before their frame wait in a '
                                   'queue of this size', range=(0, 10**9), **_RO)
    intervention_ratio: float = option(0.0, 'share of each batch drawn from windows that start '
                                       'with a human (intervened) action, as HIL-SERL/RLPD '
                                       'sample their demo buffer; 0 = uniform over all windows',
                                       range=(0.0, 1.0), **_RO)
    seed: int = option(0, 'seed of the sampling generator', range=(0, 2**31 - 1), **_RO)

    def __post_init__(self) -> None:
        validate(self)

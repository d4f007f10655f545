"""Synthetic robot videos for progress models: Meta-World experts plus labelled perturbations.

``generate`` rolls episodes out in worker processes and writes them in the format of
``synth.format`` (documented in ``FORMAT.md``); ``export`` turns them into SOLE-R1 fine-tuning
examples. Importing this package needs only numpy; MuJoCo loads in the workers.
"""
from sole_r1_ros.synth.behaviours import (
    approach_fraction, BEHAVIOURS, behaviour_for_episode, BehaviourPlan, draw_plan,
    PerturbedExpert)
from sole_r1_ros.synth.format import (
    Episode, load_episode, read_manifest, select_episodes)
from sole_r1_ros.synth.generate import episode_specs, generate, rollout, SynthConfig

__all__ = [
    'approach_fraction', 'BEHAVIOURS', 'behaviour_for_episode', 'BehaviourPlan', 'draw_plan',
    'Episode', 'episode_specs', 'generate', 'load_episode', 'PerturbedExpert', 'read_manifest',
    'rollout', 'select_episodes', 'SynthConfig',
]

"""Synthetic robot videos for progress models: Meta-World experts plus labelled perturbations.

``generate`` rolls episodes out in worker processes and writes them as labelled episodes
(``labelled.folder``, documented in ``FORMAT.md``); ``export`` turns them into SOLE-R1
fine-tuning examples through the fine-tuning writer. Importing this package needs only numpy;
MuJoCo loads in the workers.
"""
from sole_r1_ros.synth.behaviours import (
    approach_fraction, BEHAVIOURS, behaviour_for_episode, BehaviourPlan, draw_plan,
    PerturbedExpert)
from sole_r1_ros.synth.generate import episode_specs, generate, rollout, SynthConfig, to_episode
from sole_r1_ros.synth.goals import EVAL_PARAPHRASES, TRAIN_PARAPHRASES

__all__ = [
    'approach_fraction', 'BEHAVIOURS', 'behaviour_for_episode', 'BehaviourPlan', 'draw_plan',
    'episode_specs', 'EVAL_PARAPHRASES', 'generate', 'PerturbedExpert', 'rollout',
    'SynthConfig', 'to_episode', 'TRAIN_PARAPHRASES',
]

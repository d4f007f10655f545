"""A scene classifier that training plays against, so the view features cannot name the scene.

A network that learns "drawer scene, so progress looks like this" has nothing to go on in a
scene it never saw. The adversary reads the two view encoders' features (before the wrist
mask) through a gradient reversal layer (Ganin & Lempitsky 2015, "Unsupervised domain
adaptation by backpropagation") and learns to tell the training scene; the reversed gradient
pushes the encoders toward features it cannot tell apart. Episodes of one scene that do
different things (a drawer opened and closed, a puck pushed left and right) share a scene
label, so the features still tell the motions apart. It is a training aid only: the
checkpoint holds the progress network alone.
"""
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


def scene_of(episode: Any) -> str:
    """An episode's scene: ``meta['scene']`` where the data names one, else its task id."""
    return str((episode.meta or {}).get('scene') or episode.task_id)


class _ReverseGradient(torch.autograd.Function):
    """Identity forward, negated gradient backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return -grad


class SceneAdversary(nn.Module):
    """Classify the scene from the last forward pass's view features, gradient reversed.

    Hooks on ``model.external.project`` and ``model.wrist.project`` keep their outputs, so the
    progress network's forward is unchanged; call ``loss(scenes)`` after each forward.
    """

    def __init__(self, model: nn.Module, scenes: int, hidden: int = 128) -> None:
        super().__init__()
        if scenes < 2:
            raise ValueError(f'a scene adversary needs episodes of at least 2 scenes, got '
                             f'{scenes}')
        width = 2 * model.config.feature_dim
        self.classifier = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(),
                                        nn.Linear(hidden, scenes))
        self._features: dict[str, torch.Tensor] = {}
        self._hooks = [
            model.external.project.register_forward_hook(self._keeper('external')),
            model.wrist.project.register_forward_hook(self._keeper('wrist'))]

    def _keeper(self, name: str) -> Any:
        def keep(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            self._features[name] = output
        return keep

    def loss(self, scenes: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the scene guess; its gradient reaches the encoders reversed."""
        if len(self._features) < 2:
            raise RuntimeError('SceneAdversary.loss before a forward pass of the model')
        features = torch.cat([self._features['external'], self._features['wrist']], dim=1)
        return F.cross_entropy(self.classifier(_ReverseGradient.apply(features)), scenes)

    def detach(self) -> None:
        """Remove the hooks (the model is saved and used without the adversary)."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        self._features.clear()

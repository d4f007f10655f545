"""Reward backends behind one interface, picked by name with ``make_backend(config)``.

Each entry names a class with a ``from_config(RewardConfig)`` classmethod; its module is imported
only when that backend is made, so torch or httpx2 load only for the backend that needs them.
To add a backend, write its module and add one line to
``_REGISTRY`` or call ``register_backend``: callers keep using ``make_backend`` unchanged.
"""
import importlib

from sole_r1_ros.reward.backends.base import (
    Backend, BackendError, PreparedRequest, RawReply, SamplingSettings)
from sole_r1_ros.reward.config import RewardConfig

__all__ = ['Backend', 'BackendError', 'PreparedRequest', 'RawReply', 'SamplingSettings',
           'available_backends', 'make_backend', 'register_backend']

# name -> 'module:Class'
_REGISTRY: dict[str, str] = {
    'transformers': 'sole_r1_ros.reward.backends.transformers_backend:TransformersBackend',
    'openai': 'sole_r1_ros.reward.backends.openai_backend:OpenAIBackend',
    'oracle': 'sole_r1_ros.reward.backends.oracle:OracleBackend',
    'compact': 'sole_r1_ros.reward.backends.compact:CompactBackend',
}


def register_backend(name: str, target: str) -> None:
    """Register ``target`` ('package.module:Class') under ``name``, replacing any previous one."""
    if ':' not in target:
        raise ValueError(f"target must look like 'package.module:Class', got {target!r}")
    _REGISTRY[name] = target


def available_backends() -> list[str]:
    """Names ``make_backend`` accepts."""
    return sorted(_REGISTRY)


def make_backend(config: RewardConfig) -> Backend:
    """Build the backend ``config.backend`` names.

    Raises:
        ValueError: unknown backend name, or a setting the backend rejects.
        ImportError: the backend's optional dependencies are missing (the message names the
            extra to install).
        FileNotFoundError: a local checkpoint folder does not exist.
        BackendError: the backend could not start (e.g. its server never answered).
    """
    if config.backend not in _REGISTRY:
        raise ValueError(f'backend must be one of {available_backends()}, '
                         f'got {config.backend!r}')
    module_name, class_name = _REGISTRY[config.backend].split(':')
    backend_class = getattr(importlib.import_module(module_name), class_name)
    return backend_class.from_config(config)

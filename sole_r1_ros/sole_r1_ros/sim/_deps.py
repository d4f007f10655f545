"""Import MuJoCo and Meta-World on first use, so ``import sole_r1_ros.sim`` needs only numpy."""
from types import ModuleType

_INSTALL_HINT = "install the 'sim' extra: pip install 'sole_r1_ros[sim]' (metaworld, packaging)"


def import_mujoco() -> ModuleType:
    """Return the ``mujoco`` module.

    Raises:
        ImportError: MuJoCo is missing; the message names the extra to install.
    """
    try:
        import mujoco
    except ImportError as exc:
        raise ImportError(f'sole_r1_ros.sim needs MuJoCo: {_INSTALL_HINT}') from exc
    return mujoco


def import_metaworld() -> ModuleType:
    """Return the ``metaworld`` module (which imports MuJoCo and gymnasium).

    Raises:
        ImportError: Meta-World or one of its undeclared dependencies (``packaging``) is missing.
    """
    try:
        import metaworld
        import metaworld.policies  # noqa: F401  (the scripted experts)
    except ImportError as exc:
        raise ImportError(f'sole_r1_ros.sim needs Meta-World: {_INSTALL_HINT}') from exc
    return metaworld

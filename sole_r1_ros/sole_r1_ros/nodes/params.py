"""Declare node parameters with descriptors from one table, and read them back as a dict.

Each node lists its parameters once (name, default, description, range, read-only); this module
turns them into ``declare_parameter`` calls with ``ParameterDescriptor`` so ``ros2 param describe``
shows units and ranges, and out-of-range or wrong-typed values are rejected by rclpy itself.
"""
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor


@dataclass(frozen=True)
class Param:
    """One declared parameter; ``limits`` is an inclusive (min, max) range for numbers."""

    name: str
    default: Any
    description: str
    limits: tuple[float, float] | None = None
    read_only: bool = False


def declare(node, params: list[Param]) -> dict[str, Any]:
    """Declare every parameter on ``node`` and return their current values by name."""
    for param in params:
        descriptor = ParameterDescriptor(description=param.description,
                                         read_only=param.read_only)
        if param.limits is not None and isinstance(param.default, bool):
            raise ValueError(f'parameter {param.name}: a bool cannot have limits')
        if param.limits is not None and isinstance(param.default, int):
            descriptor.integer_range = [IntegerRange(
                from_value=int(param.limits[0]), to_value=int(param.limits[1]), step=1)]
        elif param.limits is not None:
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=float(param.limits[0]), to_value=float(param.limits[1]), step=0.0)]
        node.declare_parameter(param.name, param.default, descriptor)
    return values(node, params)


def values(node, params: list[Param]) -> dict[str, Any]:
    """Current values of ``params`` on ``node``."""
    return {p.name: node.get_parameter(p.name).value for p in params}

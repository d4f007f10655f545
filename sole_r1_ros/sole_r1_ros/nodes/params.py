"""Declare config dataclasses as node parameters, and keep them current when parameters change.

Every field of a config (``configuration.option``) becomes one parameter with a
``ParameterDescriptor``: its help text and limits as the description (``ros2 param describe``),
its numeric range, its type, and read-only where a change needs a restart. A changed parameter
is checked by building the config with it (one validator: the dataclass's own), and rejected
with that message; an accepted change replaces the config and is handed to ``on_change``.
"""
import dataclasses
import sys
from typing import Any, Callable, Mapping

from rcl_interfaces.msg import (
    FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType, SetParametersResult)
from rclpy.parameter import Parameter

from sole_r1_ros.configuration import check_value, FieldSpec, from_mapping, specs

_INT_LIMIT = 2**63 - 1
_TYPES = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
          float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}
_ARRAY_TYPES = {int: ParameterType.PARAMETER_INTEGER_ARRAY,
                float: ParameterType.PARAMETER_DOUBLE_ARRAY,
                str: ParameterType.PARAMETER_STRING_ARRAY}


def descriptor(spec: FieldSpec) -> ParameterDescriptor:
    """The ROS descriptor of one config field."""
    kind = _ARRAY_TYPES[spec.element] if spec.kind is tuple else _TYPES[spec.kind]
    result = ParameterDescriptor(name=spec.name, type=kind, description=spec.describe(),
                                 read_only=spec.read_only)
    if spec.range is not None and spec.kind is int:
        low, high = spec.range
        result.integer_range = [IntegerRange(
            from_value=-_INT_LIMIT if low is None else int(low),
            to_value=_INT_LIMIT if high is None else int(high), step=1)]
    elif spec.range is not None and spec.kind is float:
        low, high = spec.range
        result.floating_point_range = [FloatingPointRange(
            from_value=-sys.float_info.max if low is None else float(low),
            to_value=sys.float_info.max if high is None else float(high), step=0.0)]
    return result


def ros_value(spec: FieldSpec, value: Any) -> Any:
    """A config value as rclpy stores it (tuples as lists, ints of float fields as floats)."""
    value = check_value(spec, value)
    return list(value) if isinstance(value, tuple) else value


def _declare(node, spec: FieldSpec) -> None:
    """Declare one field.

    rclpy types an empty list as a byte array and then refuses the strings a YAML gives, and a
    float field refuses the ``10`` a YAML gives for ``10.0`` (the node died at start under
    ``ros2 launch``, where ``sole-r1 learn`` converted it), so both are declared dynamically
    typed; the config's own check converts an int of a float field and rejects a wrong type.
    """
    value, desc = ros_value(spec, spec.default), descriptor(spec)
    desc.dynamic_typing = value == [] or float in (spec.kind, spec.element)
    node.declare_parameter(spec.name, value, desc)


class NodeConfigs:
    """The config dataclasses one node declares, by section name.

    Example::

        self._configs = NodeConfigs(self, {'loop': (LoopConfig, ''), 'agent': (DrQConfig,
                                    'agent.')}, on_change=self._apply)
        loop_config = self._configs['loop']
    """

    def __init__(self, node, sections: Mapping[str, tuple[type, str]],
                 on_change: Callable[[str, Any], None] | None = None) -> None:
        """Declare every field of every section's class under its prefix; read the values.

        Raises:
            ValueError: the values given at start-up (YAML, overrides) do not make a valid
                config; the message names the field.
        """
        self._node = node
        self._sections = dict(sections)
        self._on_change = on_change
        self._owner: dict[str, tuple[str, FieldSpec]] = {}
        for section, (cls, prefix) in self._sections.items():
            for spec in specs(cls, prefix):
                self._owner[spec.name] = (section, spec)
                if not node.has_parameter(spec.name):
                    _declare(node, spec)
        _refuse_unknown(node, self._owner)
        self._configs = {section: self._read(section) for section in self._sections}
        node.add_on_set_parameters_callback(self._validate)
        node.add_post_set_parameters_callback(self._apply)

    def __getitem__(self, section: str) -> Any:
        return self._configs[section]

    def _read(self, section: str, changes: Mapping[str, Any] | None = None) -> Any:
        cls, prefix = self._sections[section]
        values = {spec.name[len(prefix):]: self._node.get_parameter(spec.name).value
                  for spec in specs(cls, prefix)}
        for name, value in (changes or {}).items():
            values[name[len(prefix):]] = value
        return from_mapping(cls, values)

    def _split(self, parameters: list[Parameter]) -> dict[str, dict[str, Any]]:
        changes: dict[str, dict[str, Any]] = {}
        for parameter in parameters:
            if parameter.name in self._owner:
                section, _ = self._owner[parameter.name]
                changes.setdefault(section, {})[parameter.name] = parameter.value
        return changes

    def _validate(self, parameters: list[Parameter]) -> SetParametersResult:
        for section, changes in self._split(parameters).items():
            try:
                self._read(section, changes)
            except ValueError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _apply(self, parameters: list[Parameter]) -> None:
        for parameter in parameters:   # a limit changed while running is in the log
            if parameter.name in self._owner:
                self._node.get_logger().info(f'parameter {parameter.name} set to '
                                             f'{parameter.value!r}')
        for section in self._split(parameters):
            self._configs[section] = self._read(section)
            if self._on_change is not None:
                self._on_change(section, self._configs[section])


def _refuse_unknown(node, declared: Mapping[str, Any]) -> None:
    """Refuse a parameter given to the node (a YAML, ``-p``) that it does not declare.

    rclpy keeps such a value unused without a word, so a misspelt safety limit would leave the
    default in force. ROS's own parameters (``use_sim_time``, ...) and QoS overrides pass, and
    so does a value that only a params file's wildcard section (``/**``) gives: meant for
    every node that has it (``sole-r1 learn`` reads them so), it stopped under ``ros2 launch``
    each node that has not. ``_parameter_overrides`` is rclpy's record of the values given at
    start-up (no public API).

    Raises:
        ValueError: naming the parameter and the closest declared names.
    """
    import difflib

    shared = wildcard_only_names(node.get_name())
    for name in getattr(node, '_parameter_overrides', {}):
        if (node.has_parameter(name) or name.startswith('qos_overrides.')   # declared by now
                or name in shared):
            continue
        close = difflib.get_close_matches(name, list(declared), n=3)
        hint = f'; did you mean {close}?' if close else ''
        raise ValueError(f'{node.get_name()} has no parameter {name!r}{hint}')


def wildcard_only_names(node_name: str, argv: list[str] | None = None) -> set[str]:
    """Parameters the ``--params-file`` files of ``argv`` give in wildcard sections only.

    A section whose last part is ``*`` or ``**`` (``/**``, ``/arm1/**``) is a wildcard; one
    naming ``node_name`` (``/**/camera_node``, ``camera_node``) is the node's own, and its
    names are never in the set. Files that cannot be read give nothing (rcl says why).
    """
    import yaml

    args = sys.argv if argv is None else argv
    files = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == '--params-file']
    shared, own = set(), set()
    for path in files:
        try:
            with open(path, encoding='utf-8') as stream:
                data = yaml.safe_load(stream) or {}
        except (OSError, yaml.YAMLError):
            continue
        for section, body in (data.items() if isinstance(data, dict) else ()):
            last = str(section).rstrip('/').rpartition('/')[2]
            values = body.get('ros__parameters') if isinstance(body, dict) else None
            if not isinstance(values, dict):
                continue
            names = set(_flat_names(values))
            if last in ('*', '**'):
                shared |= names
            elif last == node_name:
                own |= names
    return shared - own


def _flat_names(values: Mapping[str, Any], prefix: str = '') -> list[str]:
    """Dotted names of a nested parameters mapping, as rcl flattens them."""
    names = []
    for key, value in values.items():
        name = f'{prefix}{key}'
        names += _flat_names(value, f'{name}.') if isinstance(value, dict) else [name]
    return names


def overrides(cls: type, values: Mapping[str, Any], prefix: str = '') -> list[Parameter]:
    """``Parameter`` objects for the given fields, typed as their config fields say."""
    by_name = {spec.name: spec for spec in specs(cls, prefix)}
    return [Parameter(name, value=ros_value(by_name[name], value))
            for name, value in values.items()]


def as_dict(config: Any) -> dict[str, Any]:
    """A config as plain data (for logs and run directories)."""
    return dataclasses.asdict(config)

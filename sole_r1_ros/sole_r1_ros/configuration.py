"""Config dataclasses whose fields carry their own help text and limits (the TRL style).

Every component takes one frozen dataclass whose fields are declared with ``option``: the help
text, an inclusive numeric ``range``, the allowed ``choices`` and whether a change needs a
restart live in the field's metadata. From that one declaration:

- ``validate(config)``, called from ``__post_init__``, checks types, ranges and choices;
- ``from_mapping(cls, values)`` builds a config from YAML, ROS parameters or ``--set`` flags
  (nested configs by dotted keys, ``agent.lr``) and rejects unknown keys;
- ``specs(cls)`` lists the flat fields, which ``nodes/params.py`` declares as ROS parameters with
  descriptors and the CLI uses to check overrides.

So a field's meaning, default and limits are written once. Only the standard library is used.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Example:
...     rate_hz: float = option(10.0, 'how often [Hz]', range=(0.1, 100.0))
...     def __post_init__(self):
...         validate(self)
>>> from_mapping(Example, {'rate_hz': 5}).rate_hz
5.0
>>> from_mapping(Example, {'rate_hz': 500.0})
Traceback (most recent call last):
...
ValueError: Example.rate_hz must be in [0.1, 100.0], got 500.0 (how often [Hz])
"""
import collections.abc
import dataclasses
from dataclasses import dataclass, MISSING
import math
import types
import typing
from typing import Any, Callable, Mapping, Sequence, TypeVar

_T = TypeVar('_T')


def option(default: Any = MISSING, help: str = '', *,  # noqa: A002 (TRL's name)
           range: tuple[float | None, float | None] | None = None,  # noqa: A002
           choices: Sequence[Any] | None = None, length: int | None = None,
           read_only: bool = False, default_factory: Callable[[], Any] | None = None) -> Any:
    """Declare one documented config field.

    Args:
        default: the value when none is given (or use ``default_factory`` for a nested config).
        help: what the field means, with its unit in brackets.
        default_factory: makes the default (a nested config) instead of ``default``.
        range: inclusive (min, max) for a number, or for each element of a tuple; None on a
            side leaves it open.
        choices: the only values allowed (strings, or each element of a tuple).
        length: the exact number of elements of a tuple field.
        read_only: a running node cannot change it (a restart applies it).
    """
    metadata = {'help': help, 'range': range, 'choices': tuple(choices) if choices else None,
                'length': length, 'read_only': read_only}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class FieldSpec:
    """One flat (dotted) field of a config class, as a parameter loader sees it."""

    name: str
    '''Dotted name, e.g. 'agent.lr'.'''
    kind: type
    '''bool, int, float, str or tuple.'''
    element: type | None
    '''Element type of a tuple field (int, float, str).'''
    optional: bool
    '''None is allowed.'''
    default: Any
    help: str
    range: tuple[float | None, float | None] | None
    choices: tuple[Any, ...] | None
    length: int | None
    read_only: bool
    owner: str
    '''Name of the dataclass that declares the field.'''

    def describe(self) -> str:
        """Help text plus the limits, for ROS descriptors and error messages."""
        parts = [self.help] if self.help else []
        if self.choices:
            parts.append(f"one of {', '.join(map(str, self.choices))}")
        if self.range is not None:
            parts.append(f'range {_interval(self.range)}')
        return '; '.join(parts)


def specs(cls: type, prefix: str = '') -> list[FieldSpec]:
    """Every leaf field of config class ``cls``, nested configs flattened to dotted names."""
    hints = typing.get_type_hints(cls)
    out = []
    for field in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[field.name]):
            out += specs(hints[field.name], f'{prefix}{field.name}.')
        else:
            out.append(_spec(cls, field, hints[field.name], prefix))
    return out


def validate(config: Any) -> None:
    """Check every field of ``config`` against its type and metadata (not nested configs).

    Raises:
        ValueError: a value of the wrong type, out of range, not among the choices, a tuple of
            the wrong length, or a non-finite float. The message names the field and its help.
    """
    cls = type(config)
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if not dataclasses.is_dataclass(hints[field.name]):
            check_value(_spec(cls, field, hints[field.name]), getattr(config, field.name))


def _spec(cls: type, field: dataclasses.Field, annotation: Any, prefix: str = '') -> FieldSpec:
    kind, element, optional = _kind(annotation, f'{cls.__name__}.{field.name}')
    if field.default is not MISSING:
        default = field.default
    elif field.default_factory is not MISSING:
        default = field.default_factory()
    else:
        default = MISSING
    meta = field.metadata
    return FieldSpec(name=f'{prefix}{field.name}', kind=kind, element=element,
                     optional=optional, default=default, help=meta.get('help', ''),
                     range=meta.get('range'), choices=meta.get('choices'),
                     length=meta.get('length'), read_only=meta.get('read_only', False),
                     owner=cls.__name__)


def check_value(spec: FieldSpec, value: Any) -> Any:
    """Return ``value`` converted to the field's type (int -> float, list -> tuple), or raise.

    Raises:
        ValueError: see ``validate``.
    """
    where = f'{spec.owner}.{spec.name}'
    if value is None:
        if spec.optional:
            return None
        raise ValueError(f'{where} must not be empty ({spec.help})')
    if spec.kind is tuple:
        # any sequence: the parameter service (ros2 param set, param load) gives array.array
        if isinstance(value, (str, bytes)) or not isinstance(value, collections.abc.Sequence):
            raise ValueError(f'{where} must be a list of {spec.element.__name__}, got '
                             f'{value!r} ({spec.help})')
        if spec.length is not None and len(value) != spec.length:
            raise ValueError(f'{where} must have {spec.length} values, got {len(value)} '
                             f'({spec.help})')
        return tuple(_scalar(spec, spec.element, v, where) for v in value)
    return _scalar(spec, spec.kind, value, where)


def _scalar(spec: FieldSpec, kind: type, value: Any, where: str) -> Any:
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f'{where} must be a finite number, got {value!r} ({spec.help})')
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise ValueError(f'{where} must be {kind.__name__}, got {type(value).__name__} '
                         f'{value!r} ({spec.help})')
    if spec.choices is not None and value not in spec.choices:
        raise ValueError(f'{where} must be one of {list(spec.choices)}, got {value!r} '
                         f'({spec.help})')
    if spec.range is not None and kind in (int, float):
        low, high = spec.range
        if (low is not None and value < low) or (high is not None and value > high):
            raise ValueError(f'{where} must be in {_interval(spec.range)}, got {value!r} '
                             f'({spec.help})')
    return value


def from_mapping(cls: type[_T], values: Mapping[str, Any], base: _T | None = None) -> _T:
    """Build config ``cls`` from ``values`` (nested dicts or dotted keys), over ``base``.

    Fields not given keep ``base``'s value (default: the class defaults). Lists become tuples
    and ints floats where the field says so.

    Raises:
        ValueError: an unknown key, or a value ``validate`` rejects.
    """
    flat = flatten(values)
    known = {s.name: s for s in specs(cls)}
    unknown = sorted(set(flat) - set(known))
    if unknown:
        raise ValueError(f'{cls.__name__}: unknown parameter(s) {unknown}; known: '
                         f'{sorted(known)}')
    converted = {name: check_value(known[name], value) for name, value in flat.items()}
    return _build(cls, converted, base, '')


def _build(cls: type, flat: Mapping[str, Any], base: Any, prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for field in dataclasses.fields(cls):
        name = f'{prefix}{field.name}'
        annotation = hints[field.name]
        if dataclasses.is_dataclass(annotation):
            inner = getattr(base, field.name) if base is not None else None
            if inner is not None or any(k.startswith(name + '.') for k in flat):
                kwargs[field.name] = _build(annotation, flat, inner, name + '.')
        elif name in flat:
            kwargs[field.name] = flat[name]
        elif base is not None:
            kwargs[field.name] = getattr(base, field.name)
    return cls(**kwargs)


def flatten(values: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
    """Nested mappings become dotted keys ('agent': {'lr': 1} -> 'agent.lr': 1)."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f'{prefix}{key}.'))
        else:
            flat[f'{prefix}{key}'] = value
    return flat


def to_flat_dict(config: Any, prefix: str = '') -> dict[str, Any]:
    """Dotted name -> value of every leaf field (tuples as lists), e.g. for a run log."""
    flat = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            flat.update(to_flat_dict(value, f'{prefix}{field.name}.'))
        else:
            flat[f'{prefix}{field.name}'] = list(value) if isinstance(value, tuple) else value
    return flat


def _kind(annotation: Any, where: str) -> tuple[type, type | None, bool]:
    """(kind, element, optional) of a field annotation."""
    optional = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f'{where}: only X | None unions are supported, got {annotation}')
        optional, annotation = True, args[0]
        origin = typing.get_origin(annotation)
    if origin is tuple:
        args = typing.get_args(annotation)
        if len(args) != 2 or args[1] is not Ellipsis or args[0] not in (int, float, str):
            raise TypeError(f'{where}: tuples must be tuple[int|float|str, ...]')
        return tuple, args[0], optional
    if annotation in (bool, int, float, str):
        return annotation, None, optional
    raise TypeError(f'{where}: unsupported field type {annotation}')


def _interval(limits: tuple[float | None, float | None]) -> str:
    low, high = limits
    return f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"

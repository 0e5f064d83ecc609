"""A config field's YAML node to its value, by the field's Kind: strict integers, sizes, names,
devices, choices and lists, each error located at the node."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import yaml

from mlpcli.errors import ConfigError, Location
from mlpcli.loading.yamlnodes import TAG, Entry, node_kind, quoted, suggestion
from mlpcli.model.config import MAX_LAYERS, Device, FieldSpec, Kind
from mlpcli.model.units import counted

_DECIMAL = re.compile(r"[-+]?(0|[1-9][0-9]*)")


def _scalar(entry: Entry, node: yaml.Node, path: str, expected: str) -> str:
    """A plain string scalar's text, or an error that says what was read instead."""
    if isinstance(node, yaml.ScalarNode) and node.tag == TAG + "str":
        return str(node.value)
    raise ConfigError(entry.at(node), path, f"expected {expected}, got {node_kind(node)}")


def _integer(entry: Entry, node: yaml.Node, path: str, spec: FieldSpec) -> int:
    """An integer within the spec's range; YAML 1.1 notations are errors that say the number."""
    low, high = spec.minimum, spec.maximum
    assert low is not None  # FieldSpec insists on both bounds
    assert high is not None
    if not (isinstance(node, yaml.ScalarNode) and node.tag == TAG + "int"):
        message = f"expected an integer, got {node_kind(node)}{_integer_hint(node)}"
        if not entry.in_file and isinstance(node, yaml.ScalarNode) and "," in node.value:
            message += " (to sweep several values, use -m)"
        raise ConfigError(entry.at(node), path, message)
    text = str(node.value)
    if not _DECIMAL.fullmatch(text):
        read = _yaml11_integer(text)
        message = (
            f"{quoted(text)} is not a plain decimal integer"
            if read is None
            else f"{text!r} is YAML 1.1 notation (octal, hex, binary, sexagesimal or with '_') "
            f"for {read}; write {read}"
        )
        if read is not None and text.lstrip("+-").isdecimal():  # 010: octal 8, or decimal 10?
            message += f" (or {int(text)}, if you meant the decimal number)"
        raise ConfigError(entry.at(node), path, message)
    if len(text.lstrip("+-")) > len(str(high)):
        raise ConfigError(
            entry.at(node), path, f"must be <= {high}, got a number of {len(text)} digits"
        )
    value = int(text)
    if value < low:
        raise ConfigError(entry.at(node), path, f"must be >= {low}, got {value}")
    if value > high:
        raise ConfigError(entry.at(node), path, f"must be <= {high}, got {value}")
    return value


def _yaml11_integer(text: str) -> int | None:
    """What YAML 1.1 makes of an integer written other than in plain decimal (None if huge)."""
    if len(text) > 40:
        return None
    try:
        node = yaml.ScalarNode(TAG + "int", text)
        return int(yaml.constructor.SafeConstructor().construct_yaml_int(node))
    except ValueError:  # an explicit `!!int` on text that is no integer at all
        return None


def _integer_hint(node: yaml.Node) -> str:
    """`; write 1000` for a scalar that means a whole number but is not one to YAML (`1e3`)."""
    if not isinstance(node, yaml.ScalarNode) or node.tag not in (TAG + "str", TAG + "float"):
        return ""
    try:
        number = float(node.value) if len(node.value) <= 40 else math.nan
    except ValueError:
        return ""
    if not number.is_integer() or abs(number) >= 2**63:
        return ""
    return f"; write {int(number)}"


@dataclass(frozen=True)
class Parsed:
    """What a field's parser may look at: the fields parsed so far, and every field's entry."""

    values: Mapping[str, object]
    entries: Mapping[str, Entry]


def _whole_number(entry: Entry, spec: FieldSpec, _: Parsed) -> int:
    return _integer(entry, entry.node, spec.name, spec)


def _sizes(entry: Entry, spec: FieldSpec, _: Parsed) -> tuple[int, ...]:
    nodes = _sequence(entry, spec.name)
    for node in nodes:
        if isinstance(node, yaml.ScalarNode) and re.fullmatch(
            r"[-+0-9]+(\s+[-+0-9]+)+", node.value
        ):
            sizes = ", ".join(node.value.split())
            message = (
                f"read {quoted(node.value)} as one string: separate the sizes with commas, "
                f"[{sizes}]"
            )
            raise ConfigError(entry.at(node), spec.name, message)
    if not 2 <= len(nodes) <= MAX_LAYERS:
        message = f"needs 2 to {MAX_LAYERS} sizes (input, ..., output), got {len(nodes)}"
        raise ConfigError(entry.at(entry.node), spec.name, message)
    return tuple(_integer(entry, node, f"{spec.name}[{i}]", spec) for i, node in enumerate(nodes))


def _boolean(entry: Entry, spec: FieldSpec, _: Parsed) -> bool:
    node = entry.node
    boolean = isinstance(node, yaml.ScalarNode) and node.tag == TAG + "bool"
    if boolean and node.value.lower() in ("true", "false"):
        return bool(node.value.lower() == "true")
    if boolean:  # yes, no, on, off: YAML 1.1 spellings
        meant = "true" if node.value.lower() in ("yes", "y", "on") else "false"
        message = f"expected true or false, got {quoted(node.value)}; write {meant}"
        raise ConfigError(entry.at(node), spec.name, message)
    raise ConfigError(entry.at(node), spec.name, f"expected true or false, got {node_kind(node)}")


def _name(entry: Entry, spec: FieldSpec, _: Parsed) -> str:
    name = _scalar(entry, entry.node, spec.name, "a string")
    if not name.strip() or not name.isprintable() or len(name) > 200:
        raise ConfigError(
            entry.at(entry.node), spec.name, "must be 1-200 printable characters on one line"
        )
    return name


def _sequence(entry: Entry, path: str) -> list[yaml.Node]:
    node = entry.node
    if not isinstance(node, yaml.SequenceNode) or node.tag != TAG + "seq":
        message = f"expected a list, got {node_kind(node)}"
        if not entry.in_file and isinstance(node, yaml.ScalarNode) and "," in node.value:
            message += f"; write it in brackets: {path}=[{node.value}]"
        raise ConfigError(entry.at(node), path, message)
    return list(node.value)


def device_value(entry: Entry, spec: FieldSpec, _: Parsed) -> Device:
    expected = "cpu, cuda, cuda:N or auto"
    text = _scalar(entry, entry.node, spec.name, expected)
    device = Device.parse(text)
    if device is None:
        message = (
            f"expected {expected}, got {quoted(text)}{suggestion(text, ('cpu', 'cuda', 'auto'))}"
        )
        raise ConfigError(entry.at(entry.node), spec.name, message)
    return device


def _choice(entry: Entry, spec: FieldSpec, _: Parsed) -> StrEnum:
    return _member(entry, entry.node, spec.name, spec)


def _member(entry: Entry, node: yaml.Node, path: str, spec: FieldSpec) -> StrEnum:
    """The member of `spec.choices` that `node` names."""
    assert spec.choices is not None
    names = [member.value for member in spec.choices]
    text = _scalar(entry, node, path, "one of " + ", ".join(names))
    if text not in names:
        hint, choices = suggestion(text, names), ", ".join(names)
        message = f"unknown {spec.name} {quoted(text)}{hint}; one of: {choices}"
        raise ConfigError(entry.at(node), path, message)
    return spec.choices(text)


def _activations(entry: Entry, spec: FieldSpec, parsed: Parsed) -> StrEnum | tuple[StrEnum, ...]:
    """One name for every layer, or a list with one name per weight layer."""
    if not isinstance(entry.node, yaml.SequenceNode):
        return _choice(entry, spec, parsed)
    weight_layers = len(parsed.values["layers"]) - 1  # type: ignore[arg-type]
    nodes = _sequence(entry, spec.name)
    if len(nodes) != weight_layers:
        layers = parsed.entries.get("layers")
        if layers is None:  # the weights file gave them
            weights = parsed.values["weights"]
            message = (
                f"lists {counted(len(nodes), 'name')}, but the weights ({weights}) hold "
                f"{counted(weight_layers, 'weight layer')}; give one name per weight layer, or "
                "a single name for all"
            )
            raise ConfigError(entry.at(entry.node), spec.name, message)
        if entry.in_file and not layers.in_file:  # the override changed layers: name it
            message = (
                f"layers has {counted(weight_layers, 'weight layer')}, but activation lists "
                f"{counted(len(nodes), 'name')} ({entry.at(entry.node)}); override activation "
                "too, with one name for every layer (activation=relu) or one per weight layer"
            )
            raise ConfigError(Location(layers.source), None, message)
        message = (
            f"lists {counted(len(nodes), 'name')}, but layers has "
            f"{counted(weight_layers, 'weight layer')}; "
            "give one name per weight layer, or a single name for all"
        )
        raise ConfigError(entry.at(entry.node), spec.name, message)
    return tuple(_member(entry, node, f"{spec.name}[{i}]", spec) for i, node in enumerate(nodes))


def file_path(entry: Entry, spec: FieldSpec, _: Parsed) -> str:
    """A file's path, relative to the config file's folder when it is written in one; `-` is
    standard input where the field takes it."""
    text = _scalar(entry, entry.node, spec.name, "a file's path")
    if not text.strip() or "\0" in text or "\n" in text:
        raise ConfigError(entry.at(entry.node), spec.name, "must be a file's path")
    if text == "-" and not spec.stdin:
        message = "cannot be read from standard input; give a file's path"
        raise ConfigError(entry.at(entry.node), spec.name, message)
    if text == "-" or not entry.in_file or Path(text).is_absolute():
        return text
    return str(Path(entry.source).parent / text)


def _columns(entry: Entry, spec: FieldSpec, _: Parsed) -> tuple[str | int, ...]:
    """Column names and 0-based indices."""
    nodes = _nonempty_list(entry, spec)
    columns: list[str | int] = []
    for i, node in enumerate(nodes):
        path = f"{spec.name}[{i}]"
        if isinstance(node, yaml.ScalarNode) and node.tag == TAG + "int":
            columns.append(_integer(entry, node, path, spec))
        else:
            columns.append(_scalar(entry, node, path, "a column's name or 0-based index"))
    return tuple(columns)


def _names(entry: Entry, spec: FieldSpec, _: Parsed) -> tuple[str, ...]:
    nodes = _nonempty_list(entry, spec)
    return tuple(
        _scalar(entry, node, f"{spec.name}[{i}]", "a name") for i, node in enumerate(nodes)
    )


def _nonempty_list(entry: Entry, spec: FieldSpec) -> list[yaml.Node]:
    nodes = _sequence(entry, spec.name)
    if not nodes:
        raise ConfigError(entry.at(entry.node), spec.name, "an empty list; leave it out, or null")
    return nodes


_Parser = Callable[[Entry, FieldSpec, Parsed], object]
PARSERS: dict[Kind, _Parser] = {
    Kind.NAME: _name,
    Kind.INTEGER: _whole_number,
    Kind.SIZES: _sizes,
    Kind.ACTIVATIONS: _activations,
    Kind.DEVICE: device_value,
    Kind.CHOICE: _choice,
    Kind.BOOLEAN: _boolean,
    Kind.INTEGER_OR_NULL: _whole_number,  # null is the default, None, as for every field
    Kind.PATH: file_path,
    Kind.COLUMNS: _columns,
    Kind.NAMES: _names,
}


def parse_order(spec: FieldSpec) -> int:
    """Fields are parsed files first (`weights` gives `layers`), then the fields that say how to
    read them, then the rest (`layers` before `activation`, which needs it)."""
    return 0 if spec.kind is Kind.PATH else 1 if spec.reads else 2

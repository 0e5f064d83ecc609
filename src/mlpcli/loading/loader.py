"""Config files: YAML text to a frozen, validated `Config`, with located error messages.

Every field's rules come from `config.FIELDS`; this module applies them to YAML nodes.

PyYAML is used only to tokenise and compose nodes; every value is typed here, strictly, so that
`seed: "7"`, `bias: yes` or `seed: 010` are errors that say where they are, never surprises.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import re
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import yaml

from mlpcli.errors import ConfigError, Location, UsageError
from mlpcli.model.config import (
    DEFAULT_SOURCE,
    FIELDS,
    KNOWN_KEYS,
    MAX_LAYERS,
    SPECS,
    Activation,
    Config,
    Device,
    FieldSpec,
    Kind,
)
from mlpcli.model.units import counted

MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 8  # nesting of YAML collections; a config needs 2
MAX_EVENTS = 5000  # YAML values, keys and collections; a config needs at most about 2,100
DEFAULT_YAML = """\
name: default
seed: 7
layers: [3, 2, 1]
activation: sigmoid
device: cpu
"""
# Fields a weights file that mlpcli wrote gives when the user sets none (its mlpcli.config);
# `layers` and `bias` come from its tensors, as with any weights file.
WRITTEN_FIELDS = ("name", "seed", "activation", "init", "dtype", "batch")
# Environment variables that override a field of every config, for machines that must force one.
ENVIRONMENT = {"MLPCLI_DEVICE": "device", "MLPCLI_THREADS": "threads"}
T = TypeVar("T")
_DECIMAL = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_OVERRIDE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", re.DOTALL)
_TAG = "tag:yaml.org,2002:"
_ALIASES = {
    "fp32": "float32",
    "float": "float32",
    "fp64": "float64",
    "double": "float64",
    "fp16": "float16",
    "half": "float16",
    "bf16": "bfloat16",
    "linear": "identity",
    "none": "identity",
    "swish": "silu",
    "logistic": "sigmoid",
    "gpu": "cuda",
    "cuda": "device",  # for rng
}


@dataclass(frozen=True)
class _Entry:
    """One config field's YAML node and where it came from."""

    node: yaml.Node
    source: str
    in_file: bool  # False for a command-line override, whose positions mean nothing to a user

    def at(self, node: yaml.Node) -> Location:
        if not self.in_file:
            return Location(self.source)
        mark = node.start_mark
        return Location(self.source, mark.line + 1, mark.column + 1)


def load(
    path: Path | None, overrides: Sequence[str] = (), environment: Mapping[str, str] = {}
) -> Config:
    """Read and validate the config at `path` (the built-in default when None).

    Precedence, highest first: `overrides` (KEY=VALUE), the variables of ENVIRONMENT that are
    set and not empty in `environment` (the process's, from the commands), the file, defaults.
    """
    if path is None:
        source, text, stem = DEFAULT_SOURCE, DEFAULT_YAML, "default"
    else:
        source, text, stem = str(path), read_text(path), path.stem
    entries = _entries(_compose(text, source), source, text)
    for variable, key in ENVIRONMENT.items():
        if value := environment.get(variable):
            entries[key] = _value_entry(value, f"environment {variable}={value}")
    entries.update(parse_overrides(overrides))
    entries = {key: entry for key, entry in entries.items() if not _null(entry.node)}  # default
    for spec in FIELDS:  # the built-in network's sizes yield to a file that gives them
        given = entries.get(spec.name)
        if given is not None and given.source == DEFAULT_SOURCE and spec.read_from in entries:
            del entries[spec.name]
    notes = _take_written_config(entries)
    return _validate(entries, source, stem, notes)


def _null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _TAG + "null"


def parse_device(text: str, source: str) -> Device:
    """A device name (`cpu`, `cuda`, `cuda:N`, `auto`) given outside a config file."""
    return _device(_string_entry(text, source), SPECS["device"], _Parsed({}, {}))


def to_yaml(config: Config) -> str:
    """The resolved config as YAML that `load` reads back to an equal config."""
    return yaml.safe_dump(
        config.to_dict(), sort_keys=False, default_flow_style=None, allow_unicode=True
    )


def _string_entry(text: str, source: str) -> _Entry:
    return _Entry(yaml.ScalarNode(_TAG + "str", text), source, in_file=False)


def read_text(path: Path) -> str:
    """The UTF-8 text of a regular file of at most 1 MiB; UsageError or ConfigError otherwise."""
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise UsageError(f"{path}: is a directory, not a config file")
        if not stat.S_ISREG(mode):
            raise UsageError(f"{path}: not a regular file")
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        hint = (
            f" ({path} is a config key: to set it, write {path}=VALUE)"
            if str(path) in KNOWN_KEYS
            else ""
        )
        raise UsageError(f"{path}: no such file{hint}") from None
    except OSError as error:
        raise UsageError(f"{path}: cannot read: {error.strerror or error}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(Location(str(path)), None, "larger than 1 MiB; not a config file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        message = f"not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start})"
        raise ConfigError(Location(str(path)), None, message) from None


def parse_overrides(overrides: Iterable[str]) -> dict[str, _Entry]:
    """`KEY=VALUE` arguments as entries; each VALUE is read as YAML."""
    entries: dict[str, _Entry] = {}
    for argument in overrides:
        match = _OVERRIDE.fullmatch(argument)
        source = f"override '{argument}'"
        if match is None:
            raise UsageError(f"{source}: expected KEY=VALUE")
        key, value = match.groups()
        if key not in KNOWN_KEYS:
            raise ConfigError(Location(source), None, _unknown_key(key))
        entries[key] = _value_entry(value, source)
    return entries


def _value_entry(value: str, source: str) -> _Entry:
    """A value given outside a file (an override, a variable), read as YAML; empty is null,
    and `-` is itself (standard input), not a YAML list."""
    if value.strip() == "-":
        return _string_entry("-", source)
    node = _compose(value, source, in_file=False) if value.strip() else None
    return _Entry(node or yaml.ScalarNode(_TAG + "null", ""), source, in_file=False)


def is_override(argument: str) -> bool:
    """Whether a command-line argument is `KEY=VALUE` rather than a config path."""
    return _OVERRIDE.fullmatch(argument) is not None


def _compose(text: str, source: str, *, in_file: bool = True) -> yaml.Node | None:
    """One YAML document as a node tree; rejects aliases, deep nesting and several documents."""

    def fail(mark: Any, message: str) -> ConfigError:  # a yaml.Mark (pure or C), or None
        if mark is None or not in_file:
            return ConfigError(Location(source), None, message)
        return ConfigError(Location(source, mark.line + 1, mark.column + 1), None, message)

    try:
        depth = documents = 0
        for count, event in enumerate(yaml.parse(text, Loader=yaml.SafeLoader)):
            if count > MAX_EVENTS:
                raise fail(event.start_mark, f"more than {MAX_EVENTS} YAML values; not a config")
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise fail(event.start_mark, "several YAML documents; a config is one")
            elif isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise fail(event.start_mark, "YAML anchors and aliases are not supported")
            elif isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise fail(event.start_mark, f"nested deeper than {MAX_DEPTH} levels")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        problem = str(error.problem)
        if "'\\t'" in problem:  # PyYAML names the tab as '\t'
            problem += "; indent with spaces, YAML does not allow tabs there"
        raise fail(error.problem_mark, f"invalid YAML: {problem}") from None
    except yaml.reader.ReaderError as error:  # a character YAML does not allow
        line = text.count("\n", 0, error.position)
        column = error.position - (text.rfind("\n", 0, error.position) + 1)
        raise fail(
            yaml.Mark(source, error.position, line, column, "", 0),
            f"invalid YAML: character U+{error.character:04X} is not allowed",
        ) from None


def _entries(root: yaml.Node | None, source: str, text: str) -> dict[str, _Entry]:
    """The top-level mapping's fields; unknown and duplicate keys are errors."""
    if root is None:
        what = "holds no keys, only comments" if text.strip() else "empty file"
        raise ConfigError(Location(source), None, f"{what}; a config needs at least `layers`")
    in_file = _Entry(root, source, in_file=True)
    if not isinstance(root, yaml.MappingNode) or root.tag != _TAG + "map":
        raise ConfigError(
            in_file.at(root), None, f"expected a mapping of fields, got {_kind(root)}"
        )
    entries: dict[str, _Entry] = {}
    for key_node, value_node in root.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _TAG + "str":
            raise ConfigError(
                in_file.at(key_node), None, f"expected a field name, got {_kind(key_node)}"
            )
        key = key_node.value
        if key not in KNOWN_KEYS:
            raise ConfigError(in_file.at(key_node), None, _unknown_key(key))
        if key in entries:
            first = entries[key].at(entries[key].node).line
            raise ConfigError(
                in_file.at(key_node), key, f"duplicate key (first set on line {first})"
            )
        entries[key] = _Entry(value_node, source, in_file=True)
    return entries


def _unknown_key(key: str) -> str:
    known = ", ".join(KNOWN_KEYS)
    return f"unknown key {_quote(key)}{_suggest(key, KNOWN_KEYS)}; known keys: {known}"


def _suggest(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for a near miss or a common alias, else nothing."""
    choices = list(choices)
    alias = _ALIASES.get(word.lower())
    if alias is not None and alias not in choices:  # gpu -> cuda -> device, for rng
        alias = _ALIASES.get(alias)
    if word.lower() in choices:  # names are lower case: `Relu` means relu, not elu
        alias = word.lower()
    close = [alias] if alias in choices else difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _kind(node: yaml.Node) -> str:
    """How a node reads to a user in an error: `string '7'`, `a list`, `null`."""
    tag = node.tag.removeprefix(_TAG)
    names = {"str": "string", "int": "integer", "bool": "boolean", "float": "float"}
    if isinstance(node, yaml.MappingNode) and tag == "map":
        return "a mapping"
    if isinstance(node, yaml.SequenceNode) and tag == "seq":
        return "a list"
    if isinstance(node, yaml.ScalarNode) and tag == "null":
        return "null"
    if isinstance(node, yaml.ScalarNode) and tag in names:
        if tag == "bool" and node.value.lower() not in ("true", "false"):
            return (
                f"{_quote(node.value)}, which YAML 1.1 reads as a boolean (quote it for a string)"
            )
        return f"{names[tag]} {_quote(node.value)}"
    return f"a value tagged {_quote(node.tag.replace(_TAG, '!!'))}"


def _quote(text: str) -> str:
    """`'text'` for an error message, cut to 40 characters."""
    return repr(text) if len(text) <= 40 else repr(text[:40]) + "…"


def _validate(
    entries: Mapping[str, _Entry], source: str, stem: str, notes: Sequence[str] = ()
) -> Config:
    """Each field by the rules of its `FieldSpec`; absent fields take their defaults."""
    values: dict[str, object] = {}
    # files, then what picks from them, then the rest: `layers` before `activation`, which needs it
    for spec in sorted(FIELDS, key=lambda spec: _PARSE_FIRST.get(spec.kind, 2)):
        entry = entries.get(spec.name)
        if entry is not None:
            values[spec.attribute] = _PARSERS[spec.kind](entry, spec, _Parsed(values, entries))
        elif spec.read_from and values[spec.read_from] is not None:
            read = functools.partial(_read_from, spec.name, values)
            values[spec.attribute] = _about_file(entries[spec.read_from], spec.read_from, read)
        elif spec.required:
            raise ConfigError(Location(source), spec.name, "required field is missing")
        else:
            values[spec.attribute] = stem if spec.default_is_stem else spec.default
    weight_layers = len(values["layers"]) - 1  # type: ignore[arg-type]
    if isinstance(values["activations"], Activation):
        values["activations"] = (values["activations"],) * weight_layers
    locations = {key: entry.at(entry.node) for key, entry in entries.items()}
    assumed = [*notes]
    if values["weights"] is not None:
        check = functools.partial(_check_weights, values, locations)
        assumed += _about_file(entries["weights"], "weights", check)
        activation = entries.get("activation")
        if activation is None or activation.source == DEFAULT_SOURCE:
            default = values["activations"][0]  # type: ignore[index]
            assumed.append(
                f"activation is not set, so every layer runs {default}; a state dict does not "
                "hold its activations: set activation (one name, or one per layer)"
            )
    if values["inputs"] is not None:
        check = functools.partial(_check_inputs, values, locations)
        assumed += _about_file(entries["inputs"], "inputs", check)
    elif values["input_columns"] is not None:
        message = "picks columns of a table of inputs, but inputs is not set"
        raise ConfigError(locations["input_columns"], "input_columns", message)
    if values["weights_order"] is not None and values["weights"] is None:
        message = "orders the layers of a weights file, but weights is not set"
        raise ConfigError(locations["weights_order"], "weights_order", message)
    return Config(**values, locations=locations, notes=tuple(assumed))  # type: ignore[arg-type]


def _take_written_config(entries: dict[str, _Entry]) -> list[str]:
    """Fields the user did not set, from the config that mlpcli wrote into the weights file
    (`run --output`, `export`): the run that made the file, made again. A note names them."""
    weights = entries.get("weights")
    if weights is None:
        return []
    path = _path(weights, SPECS["weights"], _Parsed({}, entries))
    if not path.lower().endswith(".safetensors"):
        return []
    from mlpcli.data import tensorfiles

    _, metadata = _about_file(weights, "weights", lambda: tensorfiles.safetensors_header(path))
    if "mlpcli.config" not in metadata:
        return []
    source = f"{path} (its mlpcli.config)"
    try:
        written = json.loads(metadata["mlpcli.config"])
    except (json.JSONDecodeError, RecursionError):
        written = None
    if not isinstance(written, dict):
        raise ConfigError(weights.at(weights.node), "weights", f"{source}: not a config")
    taken = []
    for key in WRITTEN_FIELDS:
        current = entries.get(key)
        if key == "batch" and "inputs" in entries:  # the features' rows decide
            continue
        if written.get(key) is not None and (current is None or current.source == DEFAULT_SOURCE):
            entries[key] = _value_entry(json.dumps(written[key]), source)
            taken.append(key)
    return [f"{', '.join(taken)} from {source}"] if taken else []


def _read_from(key: str, values: Mapping[str, Any]) -> object:
    """Field `key`'s value as a file gives it: layers and bias from weights, batch from the
    rows of inputs."""
    from mlpcli.data import features, weightfiles

    inputs = values["inputs"]
    given = features.describe(inputs, values["input_columns"]) if inputs is not None else None
    if key == "batch":
        assert given is not None
        return given.rows
    start = given.width if given is not None else None  # the features decide between orders
    weights = weightfiles.describe(values["weights"], values["weights_order"], start)
    return weights.layers if key == "layers" else weights.bias


def _about_file(entry: _Entry, key: str, action: Callable[[], T]) -> T:
    """`action`'s result; its error about a file, located where field `key` names the file."""
    try:
        return action()
    except ConfigError as error:
        raise ConfigError(entry.at(entry.node), key, str(error)) from None


def _check_weights(values: Mapping[str, Any], locations: Mapping[str, Location]) -> tuple[str, ...]:
    """A ConfigError, naming the tensor, where the weights file and `layers` or `bias` differ;
    else what was assumed reading the file."""
    from mlpcli.data import weightfiles

    layers: tuple[int, ...] = values["layers"]
    try:  # the order of layers that starts where `layers` does
        weights = weightfiles.describe(values["weights"], values["weights_order"], layers[0])
    except ConfigError:  # none does: said below against `layers`, or the file's own error
        weights = weightfiles.describe(values["weights"], values["weights_order"])
    where = locations.get("layers")
    if len(weights.layers) != len(layers):
        message = (
            f"holds {counted(len(weights.layers) - 1, 'weight layer')} "
            f"({list(weights.layers)}), but layers {list(layers)} ({where}) has "
            f"{len(layers) - 1}"
        )
        raise ConfigError(Location(weights.path), None, message)
    for layer in range(1, len(layers)):
        name, have, want = weights.expected(layer, layers)
        if have != want:
            hint = "; transpose it" if have == want[::-1] else ""
            message = f"{name} has shape {have}, but layers ({where}) needs {want}{hint}"
            raise ConfigError(Location(weights.path), None, message)
    if weights.bias != values["bias"]:
        holds = "biases" if weights.bias else "no biases"
        message = f"holds {holds}, but bias is {str(values['bias']).lower()} ({locations['bias']})"
        raise ConfigError(Location(weights.path), None, message)
    return weights.notes


def _check_inputs(values: Mapping[str, Any], locations: Mapping[str, Location]) -> tuple[str, ...]:
    """A ConfigError where the features file and `layers[0]` or `batch` differ; else what was
    assumed reading the file."""
    from mlpcli.data import features

    layers: tuple[int, ...] = values["layers"]
    given = features.describe(values["inputs"], values["input_columns"])
    source = given.source
    if given.width != layers[0]:
        where = locations.get("layers", Location(str(values["weights"])))
        message = f"rows of {given.width} features, but layers[0] is {layers[0]} ({where})"
        raise ConfigError(Location(source), None, message)
    if given.rows != values["batch"]:
        message = (
            f"{counted(given.rows, 'row')}, but batch is {values['batch']} "
            f"({locations['batch']}); leave batch out, or set batch=null, to take the file's rows"
        )
        raise ConfigError(Location(source), None, message)
    return given.notes


def _scalar(entry: _Entry, node: yaml.Node, path: str, expected: str) -> str:
    """A plain string scalar's text, or an error that says what was read instead."""
    if isinstance(node, yaml.ScalarNode) and node.tag == _TAG + "str":
        return str(node.value)
    raise ConfigError(entry.at(node), path, f"expected {expected}, got {_kind(node)}")


def _integer(entry: _Entry, node: yaml.Node, path: str, spec: FieldSpec) -> int:
    """An integer within the spec's range; YAML 1.1 notations are errors that say the number."""
    low, high = spec.minimum, spec.maximum
    assert low is not None  # FieldSpec insists on both bounds
    assert high is not None
    if not (isinstance(node, yaml.ScalarNode) and node.tag == _TAG + "int"):
        message = f"expected an integer, got {_kind(node)}{_integer_hint(node)}"
        if not entry.in_file and isinstance(node, yaml.ScalarNode) and "," in node.value:
            message += " (to sweep several values, use -m)"
        raise ConfigError(entry.at(node), path, message)
    text = str(node.value)
    if not _DECIMAL.fullmatch(text):
        read = _yaml11_integer(text)
        message = (
            f"{_quote(text)} is not a plain decimal integer"
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
        node = yaml.ScalarNode(_TAG + "int", text)
        return int(yaml.constructor.SafeConstructor().construct_yaml_int(node))
    except ValueError:  # an explicit `!!int` on text that is no integer at all
        return None


def _integer_hint(node: yaml.Node) -> str:
    """`; write 1000` for a scalar that means a whole number but is not one to YAML (`1e3`)."""
    if not isinstance(node, yaml.ScalarNode) or node.tag not in (_TAG + "str", _TAG + "float"):
        return ""
    try:
        number = float(node.value) if len(node.value) <= 40 else math.nan
    except ValueError:
        return ""
    if not number.is_integer() or abs(number) >= 2**63:
        return ""
    return f"; write {int(number)}"


@dataclass(frozen=True)
class _Parsed:
    """What a field's parser may look at: the fields parsed so far, and every field's entry."""

    values: Mapping[str, object]
    entries: Mapping[str, _Entry]


def _whole_number(entry: _Entry, spec: FieldSpec, _: _Parsed) -> int:
    return _integer(entry, entry.node, spec.name, spec)


def _sizes(entry: _Entry, spec: FieldSpec, _: _Parsed) -> tuple[int, ...]:
    nodes = _sequence(entry, spec.name)
    for node in nodes:
        if isinstance(node, yaml.ScalarNode) and re.fullmatch(
            r"[-+0-9]+(\s+[-+0-9]+)+", node.value
        ):
            sizes = ", ".join(node.value.split())
            message = (
                f"read {_quote(node.value)} as one string: separate the sizes with commas, "
                f"[{sizes}]"
            )
            raise ConfigError(entry.at(node), spec.name, message)
    if not 2 <= len(nodes) <= MAX_LAYERS:
        message = f"needs 2 to {MAX_LAYERS} sizes (input, ..., output), got {len(nodes)}"
        raise ConfigError(entry.at(entry.node), spec.name, message)
    return tuple(_integer(entry, node, f"{spec.name}[{i}]", spec) for i, node in enumerate(nodes))


def _boolean(entry: _Entry, spec: FieldSpec, _: _Parsed) -> bool:
    node = entry.node
    boolean = isinstance(node, yaml.ScalarNode) and node.tag == _TAG + "bool"
    if boolean and node.value.lower() in ("true", "false"):
        return bool(node.value.lower() == "true")
    if boolean:  # yes, no, on, off: YAML 1.1 spellings
        meant = "true" if node.value.lower() in ("yes", "y", "on") else "false"
        message = f"expected true or false, got {_quote(node.value)}; write {meant}"
        raise ConfigError(entry.at(node), spec.name, message)
    raise ConfigError(entry.at(node), spec.name, f"expected true or false, got {_kind(node)}")


def _name(entry: _Entry, spec: FieldSpec, _: _Parsed) -> str:
    name = _scalar(entry, entry.node, spec.name, "a string")
    if not name.strip() or not name.isprintable() or len(name) > 200:
        raise ConfigError(
            entry.at(entry.node), spec.name, "must be 1-200 printable characters on one line"
        )
    return name


def _sequence(entry: _Entry, path: str) -> list[yaml.Node]:
    node = entry.node
    if not isinstance(node, yaml.SequenceNode) or node.tag != _TAG + "seq":
        raise ConfigError(entry.at(node), path, f"expected a list, got {_kind(node)}")
    return list(node.value)


def _device(entry: _Entry, spec: FieldSpec, _: _Parsed) -> Device:
    expected = "cpu, cuda, cuda:N or auto"
    text = _scalar(entry, entry.node, spec.name, expected)
    device = Device.parse(text)
    if device is None:
        message = (
            f"expected {expected}, got {_quote(text)}{_suggest(text, ('cpu', 'cuda', 'auto'))}"
        )
        raise ConfigError(entry.at(entry.node), spec.name, message)
    return device


def _choice(entry: _Entry, spec: FieldSpec, _: _Parsed) -> StrEnum:
    return _member(entry, entry.node, spec.name, spec)


def _member(entry: _Entry, node: yaml.Node, path: str, spec: FieldSpec) -> StrEnum:
    """The member of `spec.choices` that `node` names."""
    assert spec.choices is not None
    names = [member.value for member in spec.choices]
    text = _scalar(entry, node, path, "one of " + ", ".join(names))
    if text not in names:
        hint, choices = _suggest(text, names), ", ".join(names)
        message = f"unknown {spec.name} {_quote(text)}{hint}; one of: {choices}"
        raise ConfigError(entry.at(node), path, message)
    return spec.choices(text)


def _activations(entry: _Entry, spec: FieldSpec, parsed: _Parsed) -> StrEnum | tuple[StrEnum, ...]:
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


def _path(entry: _Entry, spec: FieldSpec, _: _Parsed) -> str:
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


def _columns(entry: _Entry, spec: FieldSpec, _: _Parsed) -> tuple[str | int, ...]:
    """Column names and 0-based indices."""
    nodes = _nonempty_list(entry, spec)
    columns: list[str | int] = []
    for i, node in enumerate(nodes):
        path = f"{spec.name}[{i}]"
        if isinstance(node, yaml.ScalarNode) and node.tag == _TAG + "int":
            columns.append(_integer(entry, node, path, spec))
        else:
            columns.append(_scalar(entry, node, path, "a column's name or 0-based index"))
    return tuple(columns)


def _names(entry: _Entry, spec: FieldSpec, _: _Parsed) -> tuple[str, ...]:
    nodes = _nonempty_list(entry, spec)
    return tuple(
        _scalar(entry, node, f"{spec.name}[{i}]", "a name") for i, node in enumerate(nodes)
    )


def _nonempty_list(entry: _Entry, spec: FieldSpec) -> list[yaml.Node]:
    nodes = _sequence(entry, spec.name)
    if not nodes:
        raise ConfigError(entry.at(entry.node), spec.name, "an empty list; leave it out, or null")
    return nodes


_Parser = Callable[[_Entry, FieldSpec, _Parsed], object]
_PARSERS: dict[Kind, _Parser] = {
    Kind.NAME: _name,
    Kind.INTEGER: _whole_number,
    Kind.SIZES: _sizes,
    Kind.ACTIVATIONS: _activations,
    Kind.DEVICE: _device,
    Kind.CHOICE: _choice,
    Kind.BOOLEAN: _boolean,
    Kind.INTEGER_OR_NULL: _whole_number,  # null is the default, None, as for every field
    Kind.PATH: _path,
    Kind.COLUMNS: _columns,
    Kind.NAMES: _names,
}
# parsed first: the files (`weights` gives `layers`), then what picks from them
_PARSE_FIRST = {Kind.PATH: 0, Kind.COLUMNS: 1, Kind.NAMES: 1}

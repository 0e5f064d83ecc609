"""YAML text to located entries: a config file read within its limits, composed by PyYAML
without anchors or deep nesting, its top-level fields and the command line's KEY=VALUE
overrides, each with where it came from; how a node reads in a message."""

from __future__ import annotations

import difflib
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlpcli.errors import ConfigError, Location, UsageError, shortened
from mlpcli.model.config import KNOWN_KEYS

MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 8  # nesting of YAML collections; a config needs 2
MAX_EVENTS = 5000  # YAML values, keys and collections; a config needs at most about 2,100
TAG = "tag:yaml.org,2002:"
_OVERRIDE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", re.DOTALL)
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
class Entry:
    """One config field's YAML node and where it came from."""

    node: yaml.Node
    source: str
    in_file: bool  # False for a command-line override, whose positions mean nothing to a user

    def at(self, node: yaml.Node) -> Location:
        if not self.in_file:
            return Location(self.source)
        mark = node.start_mark
        return Location(self.source, mark.line + 1, mark.column + 1)


def is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == TAG + "null"


def string_entry(text: str, source: str) -> Entry:
    return Entry(yaml.ScalarNode(TAG + "str", text), source, in_file=False)


def read_text(path: Path) -> str:
    """The UTF-8 text of a regular file of at most 1 MiB; UsageError or ConfigError otherwise."""
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise UsageError(
                f"{path}: a directory, not a config file; give the configs in it: {path / '*.yaml'}"
            )
        if not stat.S_ISREG(mode):
            raise UsageError(f"{path}: not a regular file")
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file{_setting_hint(str(path))}") from None
    except OSError as error:
        raise UsageError(f"{path}: cannot read: {error.strerror or error}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(Location(str(path)), None, "larger than 1 MiB; not a config file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        message = f"not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start})"
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            message = "UTF-16 text (by its byte order mark); save the config as UTF-8"
        elif data.startswith(b"\x93NUMPY"):
            message = f"a NumPy array (.npy), no config; give it as inputs={path}"
        raise ConfigError(Location(str(path)), None, message) from None


def _setting_hint(argument: str) -> str:
    """` (… write seed=3)` for an argument that looks like a field being set (`seed`, `seed:3`)."""
    key, separator, value = argument.partition(":")
    if key not in KNOWN_KEYS:
        return ""
    if separator:
        return f" (to set {key}, write {key}={value.strip()})"
    return f" ({key} is a config key: to set it, write {key}=VALUE)"


def option_hint(arguments: Sequence[str], option: str) -> str | None:
    """`config fields are set as KEY=VALUE: seed=3` where `option` (`--seed`), unknown to the
    command, names a config field; its value is the argument after it, or after its `=`."""
    key = option.lstrip("-").replace("-", "_")
    if key not in KNOWN_KEYS:
        return None
    value = "VALUE"
    for i, argument in enumerate(arguments):
        if argument.startswith(option + "="):
            value = argument.partition("=")[2]
        elif argument == option and i + 1 < len(arguments):
            value = arguments[i + 1]
    return f"no such option: {option}; config fields are set as KEY=VALUE: {key}={value}"


def parse_overrides(overrides: Iterable[str]) -> dict[str, Entry]:
    """`KEY=VALUE` arguments as entries; each VALUE is read as YAML."""
    entries: dict[str, Entry] = {}
    for argument in overrides:
        match = _OVERRIDE.fullmatch(argument)
        source = f"override '{shortened(argument)}'"
        if match is None:
            raise UsageError(f"{source}: expected KEY=VALUE")
        key, value = match.groups()
        if key not in KNOWN_KEYS:
            raise ConfigError(Location(source), None, unknown_key(key))
        if not value.strip():
            raise UsageError(
                f"{source}: an empty value (an unset shell variable?); "
                f"{key}=null gives {key} its default"
            )
        entries[key] = value_entry(value, source)
    return entries


def value_entry(value: str, source: str) -> Entry:
    """A value given outside a file (an override, a variable), read as YAML, and `-` as itself
    (standard input), not a YAML list."""
    if value.strip() == "-":
        return string_entry("-", source)
    node = compose(value, source, in_file=False) if value.strip() else None
    return Entry(node or yaml.ScalarNode(TAG + "null", ""), source, in_file=False)


def is_override(argument: str) -> bool:
    """Whether a command-line argument is `KEY=VALUE` rather than a config path."""
    return _OVERRIDE.fullmatch(argument) is not None


def compose(text: str, source: str, *, in_file: bool = True) -> yaml.Node | None:
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


def entries_of(root: yaml.Node | None, source: str, text: str) -> dict[str, Entry]:
    """The top-level mapping's fields; unknown and duplicate keys are errors."""
    if root is None:
        what = "holds no keys, only comments" if text.strip() else "empty file"
        raise ConfigError(Location(source), None, f"{what}; a config needs at least `layers`")
    in_file = Entry(root, source, in_file=True)
    if not isinstance(root, yaml.MappingNode) or root.tag != TAG + "map":
        raise ConfigError(
            in_file.at(root), None, f"expected a mapping of fields, got {node_kind(root)}"
        )
    entries: dict[str, Entry] = {}
    for key_node, value_node in root.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != TAG + "str":
            raise ConfigError(
                in_file.at(key_node), None, f"expected a field name, got {node_kind(key_node)}"
            )
        key = key_node.value
        if key not in KNOWN_KEYS:
            raise ConfigError(in_file.at(key_node), None, unknown_key(key))
        if key in entries:
            first = entries[key].at(entries[key].node).line
            raise ConfigError(
                in_file.at(key_node), key, f"duplicate key (first set on line {first})"
            )
        entries[key] = Entry(value_node, source, in_file=True)
    return entries


def unknown_key(key: str) -> str:
    known = ", ".join(KNOWN_KEYS)
    return f"unknown key {quoted(key)}{suggestion(key, KNOWN_KEYS)}; known keys: {known}"


def suggestion(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for a near miss or a common alias, else nothing."""
    choices = list(choices)
    alias = _ALIASES.get(word.lower())
    if alias is not None and alias not in choices:  # gpu -> cuda -> device, for rng
        alias = _ALIASES.get(alias)
    if word.lower() in choices:  # names are lower case: `Relu` means relu, not elu
        alias = word.lower()
    close = [alias] if alias in choices else difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def node_kind(node: yaml.Node) -> str:
    """How a node reads to a user in an error: `string '7'`, `a list`, `null`."""
    tag = node.tag.removeprefix(TAG)
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
                f"{quoted(node.value)}, which YAML 1.1 reads as a boolean (quote it for a string)"
            )
        return f"{names[tag]} {quoted(node.value)}"
    return f"a value tagged {quoted(node.tag.replace(TAG, '!!'))}"


def quoted(text: str) -> str:
    """`'text'` for an error message, cut to 40 characters."""
    return repr(text) if len(text) <= 40 else repr(text[:40]) + "…"

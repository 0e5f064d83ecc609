"""What `config.FIELDS` produces for people and tools: the JSON Schema, the starter config and
the README's field table. A test keeps `schema/config.schema.json` and the README equal to these.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable

from mlpcli.model.config import FIELDS, MAX_LAYERS, Activation, Device, FieldSpec, Kind, plain

STARTER_HEADER = """\
# An mlpcli config: `mlpcli run THIS_FILE` builds and runs it, `mlpcli shapes THIS_FILE` sizes it.
# Save the schema beside it (`mlpcli config schema > mlpcli.schema.json`) and editors with the
# YAML language server check it as you type, through the next line.
# yaml-language-server: $schema=mlpcli.schema.json
"""


# Not blank, and none of the characters Python's `str.isprintable` refuses that a regular
# expression can name: controls, line and paragraph separators, spaces other than " ", and the
# invisible format characters. (Unassigned and private-use code points it cannot: README.)
_INVISIBLE = (
    r"\u0000-\u001f\u007f-\u009f\u00a0\u00ad\u0600-\u0605\u061c\u06dd\u070f\u1680\u180e"
    r"\u2000-\u200f\u2028-\u202f\u205f-\u2064\u2066-\u206f\u3000\ufeff\ufff9-\ufffb"
)
PRINTABLE_PATTERN = rf"^(?!\s*$)[^{_INVISIBLE}]*$"


def json_schema() -> dict[str, object]:
    """JSON Schema (draft 2020-12) of a config file, for editors and other tools."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "mlpcli config",
        "description": "A feed-forward network for mlpcli: sizes, seed, activation, device.",
        "type": "object",
        "additionalProperties": False,
        "required": [spec.name for spec in FIELDS if spec.required and not spec.read_from],
        # a required field that a file can give: the field, or that file
        "allOf": [
            {"anyOf": [{"required": [spec.name]}, {"required": [spec.read_from]}]}
            for spec in FIELDS
            if spec.required and spec.read_from
        ],
        "properties": {spec.name: _property(spec) for spec in FIELDS},
    }


def schema_text() -> str:
    """The JSON Schema as `mlpcli config schema` prints it and `schema/` keeps it."""
    return json.dumps(json_schema(), indent=2) + "\n"


def _property(spec: FieldSpec) -> dict[str, object]:
    schema = dict(_KIND_SCHEMAS[spec.kind](spec))
    if not spec.required and not spec.default_is_stem:
        schema["default"] = plain(spec.default)
    schema["description"] = spec.help
    return schema


def _integer(spec: FieldSpec) -> dict[str, object]:
    return {"type": "integer", "minimum": spec.minimum, "maximum": spec.maximum}


def _choice(spec: FieldSpec) -> dict[str, object]:
    assert spec.choices is not None
    return {"enum": [*(member.value for member in spec.choices), *_null(spec)]}


def _null(spec: FieldSpec) -> list[None]:
    """[None] for a field whose default is null (a choice or a boolean), else []."""
    return [None] if spec.default is None and not spec.required else []


_KIND_SCHEMAS: dict[Kind, Callable[[FieldSpec], dict[str, object]]] = {
    Kind.NAME: lambda spec: {
        "type": "string", "minLength": 1, "maxLength": 200, "pattern": PRINTABLE_PATTERN,
    },
    Kind.INTEGER: _integer,
    Kind.SIZES: lambda spec: {
        "type": "array", "items": _integer(spec), "minItems": 2, "maxItems": MAX_LAYERS,
    },
    Kind.ACTIVATIONS: lambda spec: {
        "oneOf": [_choice(spec), {"type": "array", "items": _choice(spec), "minItems": 1}]
    },
    Kind.DEVICE: lambda spec: {"type": "string", "pattern": f"^({Device.PATTERN})$"},
    Kind.CHOICE: _choice,
    Kind.BOOLEAN: lambda spec: {"type": ["boolean", "null"] if _null(spec) else "boolean"},
    Kind.INTEGER_OR_NULL: lambda spec: {**_integer(spec), "type": ["integer", "null"]},
    Kind.PATH: lambda spec: {"type": ["string", "null"], "minLength": 1},
    Kind.COLUMNS: lambda spec: {
        "type": ["array", "null"], "minItems": 1,
        "items": {"oneOf": [{"type": "string", "minLength": 1}, {"type": "integer", "minimum": 0}]},
    },
    Kind.NAMES: lambda spec: {
        "type": ["array", "null"], "minItems": 1, "items": {"type": "string", "minLength": 1},
    },
}  # fmt: skip


def starter_yaml() -> str:
    """A commented starter config: each field's help above its example value."""
    lines = [STARTER_HEADER]
    for spec in FIELDS:
        text = spec.help
        if spec.kind is Kind.ACTIVATIONS:
            text += f" Names: {', '.join(a.value for a in Activation)}."
        lines += textwrap.wrap(text, width=98, initial_indent="# ", subsequent_indent="# ")
        lines.append(f"{spec.name}: {spec.example}")
    return "\n".join(lines) + "\n"


def field_table() -> str:
    """The README's table of fields: name, values, default, meaning (Markdown)."""
    rows = ["| field | values | default | meaning |", "|---|---|---|---|"]
    for spec in FIELDS:
        default = "required" if spec.required else spec.default_text or _yaml(spec.default)
        if spec.read_from:
            default += f", or from `{spec.read_from}`"
        rows.append(f"| `{spec.name}` | {_values(spec)} | {default} | {spec.help} |")
    return "\n".join(rows) + "\n"


def _values(spec: FieldSpec) -> str:
    """The values a field takes, for people."""
    if spec.choices is not None:
        names = " \\| ".join(f"`{member.value}`" for member in spec.choices)
        if spec.kind is not Kind.CHOICE:
            return f"{names}, or a list of them"
        return names + (", or `null`" if _null(spec) else "")
    return {
        Kind.NAME: "text, 1-200 printable characters",
        Kind.INTEGER: f"integer, {spec.minimum} to {spec.maximum}",
        Kind.SIZES: f"list of integers, {spec.minimum} to {spec.maximum}",
        Kind.DEVICE: "`cpu` \\| `cuda` \\| `cuda:N` \\| `auto`",
        Kind.BOOLEAN: "`true` \\| `false`" + (", or `null`" if _null(spec) else ""),
        Kind.INTEGER_OR_NULL: f"integer, {spec.minimum} to {spec.maximum}, or `null`",
        Kind.PATH: "a file's path, " + ("`-`, " if spec.stdin else "") + "or `null`",
        Kind.COLUMNS: "list of column names and 0-based indices, or `null`",
        Kind.NAMES: "list of names, or `null`",
    }[spec.kind]


def _yaml(value: object) -> str:
    """A default as it is written in a config file."""
    return f"`{json.dumps(plain(value)).strip(chr(34))}`"

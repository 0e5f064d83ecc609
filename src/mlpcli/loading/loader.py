"""Config files: YAML text to a frozen, validated `Config`, with located error messages.

Every field's rules come from `config.FIELDS`; this module applies them to YAML nodes
(`yamlnodes` reads them, `values` types them, `datafiles` reads and checks the files named).

PyYAML is used only to tokenise and compose nodes; every value is typed here, strictly, so that
`seed: "7"`, `bias: yes` or `seed: 010` are errors that say where they are, never surprises.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlpcli.errors import DEFAULT_SOURCE, ConfigError, Location
from mlpcli.loading.datafiles import (
    about_file,
    check_activations,
    check_inputs,
    check_weights,
    not_a_config,
    read_from,
    take_written_config,
)
from mlpcli.loading.values import PARSERS, Parsed, device_value, parse_order
from mlpcli.loading.yamlnodes import (
    Entry,
    compose,
    entries_of,
    is_null,
    parse_overrides,
    read_text,
    string_entry,
    value_entry,
)
from mlpcli.model.config import (
    FIELDS,
    SPECS,
    Activation,
    Config,
    Device,
)

DEFAULT_YAML = """\
name: default
seed: 7
layers: [3, 2, 1]
activation: sigmoid
device: cpu
"""
# Environment variables that override a field of every config, for machines that must force one.
ENVIRONMENT = {"MLPCLI_DEVICE": "device", "MLPCLI_THREADS": "threads"}


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
        not_a_config(path)
        source, text, stem = str(path), read_text(path), path.stem
    entries = entries_of(compose(text, source), source, text)
    for variable, key in ENVIRONMENT.items():
        if value := environment.get(variable):
            entries[key] = value_entry(value, f"environment {variable}={value}")
    entries.update(parse_overrides(overrides))
    cleared = {key: entry for key, entry in entries.items() if is_null(entry.node)}  # default
    entries = {key: entry for key, entry in entries.items() if key not in cleared}
    for spec in FIELDS:  # the built-in network's sizes yield to a file that gives them
        given = entries.get(spec.name)
        if given is not None and given.source == DEFAULT_SOURCE and spec.read_from in entries:
            del entries[spec.name]
    notes = take_written_config(entries)
    return _validate(entries, cleared, source, stem, notes)


def parse_device(text: str, source: str) -> Device:
    """A device name (`cpu`, `cuda`, `cuda:N`, `auto`) given outside a config file."""
    return device_value(string_entry(text, source), SPECS["device"], Parsed({}, {}))


def _validate(
    entries: Mapping[str, Entry],
    cleared: Mapping[str, Entry],
    source: str,
    stem: str,
    notes: Sequence[str],
) -> Config:
    """Each field by the rules of its `FieldSpec`; absent fields take their defaults (a field
    set to null, `cleared`, too)."""
    values: dict[str, object] = {}
    for spec in sorted(FIELDS, key=parse_order):
        entry = entries.get(spec.name)
        if entry is not None:
            values[spec.attribute] = PARSERS[spec.kind](entry, spec, Parsed(values, entries))
        elif spec.read_from and values[spec.read_from] is not None:
            values[spec.attribute] = read_from(spec.name, values, entries)
        elif spec.required and spec.name in cleared:
            where = cleared[spec.name]
            raise ConfigError(where.at(where.node), spec.name, "required; null leaves it unset")
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
        check = functools.partial(check_weights, values, locations)
        assumed += about_file(entries["weights"], "weights", check)
        check_activations(values, locations)
        activation = entries.get("activation")
        if activation is None or activation.source == DEFAULT_SOURCE:
            default = values["activations"][0]  # type: ignore[index]
            assumed.append(
                f"activation is not set, so every layer runs {default}; a state dict does not "
                "hold its activations: set activation (one name, or one per layer)"
            )
    if values["inputs"] is not None:
        check = functools.partial(check_inputs, values, locations)
        assumed += about_file(entries["inputs"], "inputs", check)
    for spec in FIELDS:
        if spec.reads and values[spec.attribute] is not None and values[spec.reads] is None:
            message = f"says how to read the {spec.reads} file, but {spec.reads} is not set"
            raise ConfigError(locations[spec.name], spec.name, message)
    return Config(**values, locations=locations, notes=tuple(assumed))  # type: ignore[arg-type]

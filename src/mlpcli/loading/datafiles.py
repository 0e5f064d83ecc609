"""The files a config names: the fields a file gives (layers and bias from weights, batch from
the rows of inputs, and what mlpcli wrote into its own weights files), and the checks of the
files against the fields the user set."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mlpcli.errors import DEFAULT_SOURCE, ConfigError, Location, UnavailableError, UsageError
from mlpcli.loading.values import Parsed, file_path
from mlpcli.loading.yamlnodes import Entry, value_entry
from mlpcli.model.config import MAX_SIZE, SPECS
from mlpcli.model.units import counted

if TYPE_CHECKING:
    from mlpcli.data.weightfiles import WeightsFile

# Fields a weights file that mlpcli wrote gives when the user sets none (its mlpcli.config);
# `layers` and `bias` come from its tensors, as with any weights file.
WRITTEN_FIELDS = ("name", "seed", "activation", "init", "dtype", "batch")
T = TypeVar("T")


def not_a_config(path: Path) -> None:
    """A path given where a config goes that is standard input or a file of another kind (the
    features, the weights, TOML): one line that says where it goes instead."""
    from mlpcli.data import features, weightfiles

    if str(path) == "-":
        raise UsageError(
            "-: a config is read from its file, not from standard input; `-` is for the "
            "features: inputs=-"
        )
    suffix = path.suffix.lower()
    fields = [
        f"{field}={path}"
        for field, suffixes in (("inputs", features.SUFFIXES), ("weights", weightfiles.SUFFIXES))
        if suffix in suffixes and suffix != ".json"  # JSON may be a config: it is YAML too
    ]
    if fields:
        raise UsageError(f"{path}: a {suffix} file is no config; give it as {' or '.join(fields)}")
    if suffix == ".toml":
        message = "TOML; a config is YAML (mlpcli config init FILE.yaml writes one)"
        raise UsageError(f"{path}: {message}")


def take_written_config(entries: dict[str, Entry]) -> list[str]:
    """Fields the user did not set, from the config that mlpcli wrote into the weights file
    (`run --output`, `export`): the run that made the file, made again. A note names them."""
    weights = entries.get("weights")
    if weights is None:
        return []
    path = file_path(weights, SPECS["weights"], Parsed({}, entries))
    if path.lower().endswith((".onnx", ".keras")):
        return _graph_activations(entries, weights, path)
    if not path.lower().endswith(".safetensors"):
        return []
    from mlpcli.data import tensorfiles

    _, metadata = about_file(weights, "weights", lambda: tensorfiles.safetensors_header(path))
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
            entries[key] = value_entry(json.dumps(written[key]), source)
            taken.append(key)
    return [f"{', '.join(taken)} from {source}"] if taken else []


def _graph_activations(entries: dict[str, Entry], weights: Entry, path: str) -> list[str]:
    """The activations a model file (ONNX, .keras) runs, where the user set none (a note says
    so); one the user set is checked against them (`check_activations`)."""
    from mlpcli.data import weightfiles

    graph = about_file(weights, "weights", lambda: weightfiles.activations_of(path))
    current = entries.get("activation")
    if graph is None or (current is not None and current.source != DEFAULT_SOURCE):
        return []
    source = f"{path} (its model)"
    entries["activation"] = value_entry(json.dumps(list(graph)), source)
    return [f"activation from {source}: {', '.join(graph)}"]


def read_from(key: str, values: Mapping[str, Any], entries: Mapping[str, Entry]) -> object:
    """Field `key`'s value as a file gives it: layers and bias from weights, batch from the
    rows of inputs; a problem is located where the config names the file it is in."""
    from mlpcli.data import features

    def described_inputs() -> features.FeaturesFile:
        described = features.describe(values["inputs"], features.reading_of(values))
        if key == "batch" and (described.rows or 0) > MAX_SIZE:  # a file's has the limit too
            message = f"holds {described.rows:,} rows; a batch is at most {MAX_SIZE:,}"
            raise ConfigError(Location(described.source), None, message)
        return described

    described = None
    if values["inputs"] is not None:
        described = about_file(entries["inputs"], "inputs", described_inputs)
    if key == "batch":
        assert described is not None
        return described.rows

    def described_weights() -> WeightsFile:
        weights = _weights_from(values, described.width if described is not None else None)
        if any(not 1 <= size <= MAX_SIZE for size in weights.layers):
            sizes = list(weights.layers)[:8]
            message = f"holds layers of sizes {sizes}; each is 1 to {MAX_SIZE:,}"
            raise ConfigError(Location(weights.path), None, message)
        return weights

    weights = about_file(entries["weights"], "weights", described_weights)
    if described is not None and weights.layers[0] != described.width:
        message = (
            f"rows of {described.width} features, but the weights ({weights.path}) take "
            f"{weights.layers[0]} (layers {list(weights.layers)}){described.misfit}"
        )
        error = ConfigError(Location(described.source), None, message)
        raise ConfigError(entries["inputs"].at(entries["inputs"].node), "inputs", str(error))
    return weights.layers if key == "layers" else weights.bias


def about_file(entry: Entry, key: str, action: Callable[[], T]) -> T:
    """`action`'s result; its error about a file, located where field `key` names the file
    (one that this machine cannot do, such as a missing package, keeps its exit code)."""
    try:
        return action()
    except ConfigError as error:
        raise ConfigError(entry.at(entry.node), key, str(error)) from None
    except UnavailableError as error:
        raise UnavailableError(str(error), entry.at(entry.node), key) from None


def _weights_from(values: Mapping[str, Any], start: int | None) -> WeightsFile:
    """The weights file, its layers in the order that starts at `start` (the features' or
    `layers[0]`'s width) where one does, else in the order it gives (its own errors raised):
    the caller says the mismatch."""
    from mlpcli.data import weightfiles

    path, order, norms = values["weights"], values["weights_order"], values["batchnorm"]
    try:
        return weightfiles.describe(path, order, start, norms)
    except ConfigError:
        if start is None:
            raise
        return weightfiles.describe(path, order, None, norms)


def check_weights(values: Mapping[str, Any], locations: Mapping[str, Location]) -> tuple[str, ...]:
    """A ConfigError, naming the tensor, where the weights file and `layers` or `bias` differ;
    else what was assumed reading the file."""

    layers: tuple[int, ...] = values["layers"]
    weights = _weights_from(values, layers[0])  # a mismatch is said below against `layers`
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


def check_activations(values: Mapping[str, Any], locations: Mapping[str, Location]) -> None:
    """A ConfigError where `activation` differs from what the weights' graph runs."""
    from mlpcli.data import weightfiles

    graph = weightfiles.activations_of(values["weights"])
    configured = tuple(str(a) for a in values["activations"])
    if graph is not None and configured != graph:
        message = (
            f"{list(configured)} differs from what the model in {values['weights']} runs, "
            f"{list(graph)}; leave activation out to run the graph's"
        )
        raise ConfigError(locations["activation"], "activation", message)


def check_inputs(values: Mapping[str, Any], locations: Mapping[str, Location]) -> tuple[str, ...]:
    """A ConfigError where the features file and `layers[0]` or `batch` differ; else what was
    assumed reading the file."""
    from mlpcli.data import features

    layers: tuple[int, ...] = values["layers"]
    described = features.describe(values["inputs"], features.reading_of(values))
    source = described.source
    if described.width != layers[0]:
        where = locations.get("layers", Location(str(values["weights"])))
        rows = f"rows of {counted(described.width, 'feature')}"
        message = f"{rows}, but layers[0] is {layers[0]} ({where}){described.misfit}"
        raise ConfigError(Location(source), None, message)
    if described.rows is None:  # streamed: counted as read (against `batch`, where it is set)
        return described.notes
    if described.rows != values["batch"] and "batch" not in locations:  # batch came from this file
        message = (
            f"holds {described.rows:,} rows, not the {values['batch']:,} counted a moment before; "
            "it changed while it was read"
        )
        raise ConfigError(Location(source), None, message)
    if described.rows != values["batch"]:
        message = (
            f"{counted(described.rows, 'row')}, but batch is {values['batch']} "
            f"({locations['batch']}); leave batch out, or set batch=null, to take the file's rows"
        )
        raise ConfigError(Location(source), None, message)
    return described.notes

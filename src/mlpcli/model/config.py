"""The config as data: the validated `Config`, its enums and limits; no YAML here (`loader`).

docs/contract.md section 1 is the contract for every field.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum

from mlpcli.errors import DEFAULT_SOURCE, Location


class Activation(StrEnum):
    """Activation functions, applied after each weight layer."""

    SIGMOID = "sigmoid"
    RELU = "relu"
    TANH = "tanh"
    GELU = "gelu"
    SILU = "silu"
    LEAKY_RELU = "leaky_relu"
    ELU = "elu"
    SOFTPLUS = "softplus"
    SOFTMAX = "softmax"
    IDENTITY = "identity"


class DType(StrEnum):
    """Floating-point types a network can run in."""

    FLOAT32 = "float32"
    FLOAT64 = "float64"
    FLOAT16 = "float16"
    BFLOAT16 = "bfloat16"

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2}[self.value]

    @property
    def output_type(self) -> str:
        """The NumPy type of a run's output rows (bfloat16, which NumPy lacks, as float32)."""
        return {"float64": "f8", "float16": "f2"}.get(self.value, "f4")


class Rng(StrEnum):
    """Where the seeded generator draws: the contract's CPU draw, or the target device."""

    CPU = "cpu"  # the same numbers on every machine (docs/contract.md section 2)
    DEVICE = "device"  # faster for large networks; the same only on that device type and model


class Parallel(StrEnum):
    """How a run over several processes shares the work (docs/distributed.md)."""

    NONE = "none"  # each network on one process; a sweep's networks go round the ranks
    DATA = "data"  # the batch's rows (whole chunks, with `chunk`) split over ranks
    PIPELINE = "pipeline"  # each rank a contiguous range of layers; `chunk` rows a micro-batch
    TENSOR = "tensor"  # each weight split: column then row parallel, in pairs of layers


class Orient(StrEnum):
    """How a JSON object of objects holds a table (pandas' `to_json` orients)."""

    COLUMNS = "columns"  # {column: {row: value}}: pandas' default
    INDEX = "index"  # {row: {column: value}}


class NormPlace(StrEnum):
    """Where a weights file's BatchNorm1d sits between two Linear layers."""

    AFTER_LINEAR = "after_linear"  # Linear, BatchNorm1d, activation: folded into that Linear
    AFTER_ACTIVATION = "after_activation"  # activation, BatchNorm1d, Linear: into the next's inputs


class Init(StrEnum):
    """How drawn weights are scaled (biases never are)."""

    NORMAL = "normal"
    XAVIER = "xavier"
    KAIMING = "kaiming"


MAX_SEED = 2**63 - 1
MAX_SIZE = 2**31 - 1  # largest layer width or batch
MAX_LAYERS = 1025  # sizes in `layers`: up to 1024 weight layers
MAX_THREADS = 4096
MAX_TIMEOUT_S = 7 * 24 * 3600


@dataclass(frozen=True)
class Device:
    """Where a network runs: `cpu`, `cuda` (the current GPU), `cuda:N`, or `auto`."""

    type: str  # cpu | cuda | auto
    index: int | None = None

    PATTERN = r"cpu|auto|cuda(:(0|[1-9][0-9]{0,3}))?"  # ClassVar: not a field (no annotation)

    @classmethod
    def parse(cls, text: str) -> Device | None:
        """The device `text` names, or None when it names none."""
        if not re.fullmatch(cls.PATTERN, text):
            return None
        kind, _, index = text.partition(":")
        return cls(kind, int(index) if index else None)

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"


CPU = Device("cpu")


@dataclass(frozen=True)
class Config:
    """A validated network description; `activations` has one entry per weight layer."""

    name: str
    seed: int
    layers: tuple[int, ...]
    activations: tuple[Activation, ...]
    device: Device = CPU
    dtype: DType = DType.FLOAT32
    batch: int | None = 1  # None: standard input's rows, counted as `run` reads them
    init: Init = Init.NORMAL
    bias: bool = True
    chunk: int | None = None  # rows per forward pass; None: the whole batch at once
    rng: Rng = Rng.CPU
    threads: int | None = None  # torch's CPU threads; None: torch's default
    inputs: str | None = None  # a features file, "-" for stdin; None: drawn from the seed
    weights: str | None = None  # a weights file; None: drawn from the seed
    parallel: Parallel = Parallel.NONE
    timeout: int = 60  # seconds a rank waits for another before every rank ends
    input_columns: tuple[str | int, ...] | None = None  # of a table of inputs; None: every one
    input_header: bool | None = None  # a text table's first line names columns; None: guessed
    input_orient: Orient | None = None  # a JSON object of objects; None: pandas' default
    weights_order: tuple[str, ...] | None = None  # the weights file's layers, in order
    batchnorm: NormPlace | None = None  # where a file's BatchNorm1d sits; None: its names say
    locations: Mapping[str, Location] = field(default_factory=dict, compare=False, repr=False)
    notes: tuple[str, ...] = field(default=(), compare=False, repr=False)  # what was assumed

    def on_device(self, device: Device, source: str) -> Config:
        """This config on another device, named as set by `source` (such as `--devices`)."""
        locations = {**self.locations, "device": Location(source)}
        return dataclasses.replace(self, device=device, locations=locations)

    @property
    def batch_size(self) -> int:
        """The batch's rows, known before the run (all but standard input's as `run` streams
        it, which are counted as they come)."""
        assert self.batch is not None, "a streamed standard input's rows are not known yet"
        return self.batch

    def first_row(self) -> Config:
        """This network on a batch of one row (the first of its features): `draw --values`."""
        return dataclasses.replace(self, batch=1, chunk=None)

    def where(self, key: str) -> Location:
        """Where field `key` was set (the file, an override, or the built-in default)."""
        return self.locations.get(key, Location(DEFAULT_SOURCE))

    def to_dict(self) -> dict[str, object]:
        """The resolved config as plain data, in the file's field order."""
        data: dict[str, object] = {}
        for spec in FIELDS:
            value = getattr(self, spec.attribute)
            uniform = spec.kind is Kind.ACTIVATIONS and len(set(value)) == 1
            data[spec.name] = plain(value[0] if uniform else value)
        return data


class Kind(StrEnum):
    """What a field's value is; `loader` parses and `schema` describes each kind."""

    NAME = "name"  # a string of 1-200 printable characters on one line
    INTEGER = "integer"
    SIZES = "sizes"  # a list of integers
    ACTIVATIONS = "activations"  # one activation, or a list of one per weight layer
    DEVICE = "device"
    CHOICE = "choice"  # one of an enum's values
    BOOLEAN = "boolean"
    INTEGER_OR_NULL = "integer or null"
    PATH = "path"  # a file's path, or null; relative to the config file's folder
    COLUMNS = "columns"  # a list of column names and 0-based indices, or null
    NAMES = "names"  # a list of names, or null


@dataclass(frozen=True)
class FieldSpec:
    """One config field: its rules, default and documentation, from which everything is made."""

    name: str
    kind: Kind
    help: str  # one or two sentences: the README's field table, the starter config, the schema
    example: str  # the starter config's value, as YAML
    default: object = None  # the typed value taken when the field is absent
    default_text: str = ""  # the default for people, where `default` cannot say it
    default_is_stem: bool = False  # absent: the config file's name without its suffix
    required: bool = False
    minimum: int | None = None
    maximum: int | None = None
    choices: type[StrEnum] | None = None
    attribute: str = ""  # the `Config` attribute; the name when empty
    read_from: str = ""  # absent, and this PATH field given: the value is read from that file
    stdin: bool = False  # a PATH field that takes `-`, standard input
    reads: str = ""  # the PATH field whose file this field says how to read

    def __post_init__(self) -> None:
        if not self.attribute:
            object.__setattr__(self, "attribute", self.name)
        integers = (Kind.INTEGER, Kind.SIZES, Kind.INTEGER_OR_NULL)
        if self.kind in integers and (self.minimum is None or self.maximum is None):
            raise ValueError(f"field {self.name}: an integer field needs a minimum and a maximum")


FIELDS = (
    FieldSpec(
        "name", Kind.NAME, "Shown in results and used to match `--expect` files.", "my_network",
        default_text="the file's name without its suffix (`default` for the built-in config)",
        default_is_stem=True,
    ),
    FieldSpec(
        "seed", Kind.INTEGER, "Seeds the one generator that draws every feature, weight and bias.",
        "0", default=0, minimum=0, maximum=MAX_SEED,
    ),
    FieldSpec(
        "layers", Kind.SIZES,
        "Input size, hidden sizes..., output size (2 to 1025 sizes).",
        "[4, 16, 3]", required=True, minimum=1, maximum=MAX_SIZE, read_from="weights",
    ),
    FieldSpec(
        "activation", Kind.ACTIVATIONS,
        "One name for every layer, or a list with one name per weight layer; softmax is over "
        "the last dimension, identity is no activation.",
        "[relu, softmax]", default=Activation.SIGMOID, choices=Activation,
        attribute="activations",
    ),
    FieldSpec(
        "device", Kind.DEVICE,
        "cpu, cuda, cuda:N, or auto (cuda when there is one, else cpu).", "cpu", default=CPU,
    ),
    FieldSpec(
        "dtype", Kind.CHOICE, "The tensors' type; weights are drawn in float32, then cast.",
        "float32", default=DType.FLOAT32, choices=DType,
    ),
    FieldSpec(
        "batch", Kind.INTEGER, "Rows of input features.", "8", default=1, minimum=1,
        maximum=MAX_SIZE, read_from="inputs",
    ),
    FieldSpec(
        "init", Kind.CHOICE,
        "normal (as drawn), xavier (scaled by sqrt(2 / (n_in + n_out))) or kaiming "
        "(sqrt(2 / n_in)); biases are never scaled.",
        "kaiming", default=Init.NORMAL, choices=Init,
    ),
    FieldSpec(
        "bias", Kind.BOOLEAN, "Whether each layer adds a bias B.", "true", default=True,
        read_from="weights",
    ),
    FieldSpec(
        "chunk", Kind.INTEGER_OR_NULL,
        "Rows of the batch per forward pass, for a batch too large for memory at once; "
        "null: all at once.",
        "null", minimum=1, maximum=MAX_SIZE,
    ),
    FieldSpec(
        "rng", Kind.CHOICE,
        "cpu: every number drawn by one CPU generator, the same on every machine. device: drawn "
        "on the target device, much faster for large networks, reproducible only on that device "
        "type and model.",
        "cpu", default=Rng.CPU, choices=Rng,
    ),
    FieldSpec(
        "threads", Kind.INTEGER_OR_NULL,
        "CPU threads for torch's kernels; null: torch's default, one per core. On a machine "
        "that runs other jobs, 1 or 2 can be many times faster.",
        "null", minimum=1, maximum=MAX_THREADS,
    ),
    FieldSpec(
        "inputs", Kind.PATH,
        "Features from a file instead of the seed: .npy, .npz, .csv, .tsv, .txt, .json, .jsonl, "
        ".safetensors, .parquet, .feather, or - for standard input (.npy or .npz bytes, "
        "Parquet, feather, CSV, JSON or JSON Lines); batch is its number of rows.",
        "null", stdin=True,
    ),
    FieldSpec(
        "input_columns", Kind.COLUMNS,
        "The columns of a table of inputs that are the features, in order: names from its "
        "header or 0-based indices; the others (labels, ids) are left out. null: every column.",
        "null", minimum=0, maximum=MAX_SIZE, reads="inputs",
    ),
    FieldSpec(
        "input_header", Kind.BOOLEAN,
        "Whether a text table's first line names its columns. null: a line of text is a header, "
        "and a line of numbers is one where its types differ from the rows below (whole numbers "
        "above decimals), with a note where that is a guess.",
        "null", reads="inputs",
    ),
    FieldSpec(
        "input_orient", Kind.CHOICE,
        "How a JSON object of objects holds the table: columns ({column: {row: value}}, "
        "pandas' default) or index ({row: {column: value}}). null: columns, with a note where "
        "the file could be either.",
        "null", choices=Orient, reads="inputs",
    ),
    FieldSpec(
        "weights", Kind.PATH,
        "Weights and biases from .safetensors, .pt, .pth, .ckpt, .bin (PyTorch's format, "
        "tensors only) or .npz: mlpcli's W1.., B1.., or a state dict or training checkpoint of "
        "Linear (and BatchNorm1d) layers; or an MLP's ONNX graph (.onnx) or Keras 3 model "
        "(.keras, which give the activations too; .weights.h5). layers and bias may then be "
        "left out. Features are still drawn from the seed.",
        "null",
    ),
    FieldSpec(
        "weights_order", Kind.NAMES,
        "The weights file's Linear layers by name (fc1, out, ...), in the order they run, where "
        "their shapes allow several orders. null: the one order the shapes connect.",
        "null", reads="weights",
    ),
    FieldSpec(
        "batchnorm", Kind.CHOICE,
        "Where a weights file's BatchNorm1d layers sit: after_linear (Linear, BatchNorm1d, "
        "activation) or after_activation (activation, BatchNorm1d, next Linear). null: from an "
        "nn.Sequential's indices (right after a Linear, or right before the next one after a "
        "gap, the activation); where they or other names cannot say, it is refused.",
        "null", choices=NormPlace, reads="weights",
    ),
    FieldSpec(
        "parallel", Kind.CHOICE,
        "How a run over several processes (`--nproc N`, torchrun) shares the work: none (each "
        "network on one rank), data (the batch's rows), pipeline (ranges of layers) or tensor "
        "(every weight split).",
        "none", default=Parallel.NONE, choices=Parallel,
    ),
    FieldSpec(
        "timeout", Kind.INTEGER,
        "Seconds a rank of a parallel run waits for another; then every rank ends, exit 3, "
        "naming the rank that did not answer.",
        "60", default=60, minimum=1, maximum=MAX_TIMEOUT_S,
    ),
)  # fmt: skip
KNOWN_KEYS = tuple(spec.name for spec in FIELDS)
SPECS = {spec.name: spec for spec in FIELDS}


def plain(value: object) -> object:
    """A field's value as JSON-ready data: enums by value, tuples as lists, devices as text."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return [plain(item) for item in value]
    if isinstance(value, Device):
        return str(value)
    return value

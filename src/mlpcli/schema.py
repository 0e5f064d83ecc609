"""The config file's JSON Schema and the starter config, both from `config`'s definitions."""

from __future__ import annotations

from mlpcli.config import (
    DEVICE_PATTERN,
    MAX_LAYERS,
    MAX_SEED,
    MAX_SIZE,
    Activation,
    DType,
    Init,
    Rng,
)

STARTER_YAML = """\
# An mlpcli config: `mlpcli run THIS_FILE` builds and runs it, `mlpcli shapes THIS_FILE` sizes it.
# Save the schema beside it (`mlpcli config schema > mlpcli.schema.json`) and editors with the
# YAML language server check it as you type, through the next line.
# yaml-language-server: $schema=mlpcli.schema.json

# Shown in results; defaults to the file's name without .yaml.
name: my_network
# Seeds the one generator that draws every feature, weight and bias (0 <= seed < 2**63).
seed: 0
# Input size, hidden sizes..., output size: here 4 features, 16 hidden units, 3 outputs.
layers: [4, 16, 3]
# One name for every layer, or a list with one per weight layer: sigmoid, relu, tanh, gelu,
# silu, leaky_relu, elu, softplus, softmax (over the last dimension) or identity.
activation: [relu, softmax]
# cpu, cuda, cuda:N, or auto (cuda when there is one, else cpu).
device: cpu
# float32, float64, float16 or bfloat16. Weights are drawn in float32, then cast.
dtype: float32
# Rows of input features.
batch: 8
# normal (as drawn), xavier (scaled by sqrt(2 / (n_in + n_out))) or kaiming (sqrt(2 / n_in)).
init: kaiming
# Whether each layer adds a bias B.
bias: true
# Rows of the batch per forward pass, for a batch too large for memory at once; null: all.
chunk: null
# cpu: every number drawn by one CPU generator, the same on every machine. device: drawn on the
# target device, much faster for large networks, reproducible only on that device type and model.
rng: cpu
"""


def json_schema() -> dict[str, object]:
    """JSON Schema (draft 2020-12) of a config file, for editors and other tools."""
    activation = {"enum": [a.value for a in Activation]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "mlpcli config",
        "description": "A feed-forward network for mlpcli: sizes, seed, activation, device.",
        "type": "object",
        "additionalProperties": False,
        "required": ["layers"],
        "properties": {
            "name": {
                "type": "string",
                "minLength": 1,
                "maxLength": 200,
                "description": "Shown in results; defaults to the file's stem.",
            },
            "seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED, "default": 0},
            "layers": {
                "type": "array",
                "items": {"type": "integer", "minimum": 1, "maximum": MAX_SIZE},
                "minItems": 2,
                "maxItems": MAX_LAYERS,
                "description": "Input size, hidden sizes..., output size.",
            },
            "activation": {
                "oneOf": [activation, {"type": "array", "items": activation, "minItems": 1}],
                "default": Activation.SIGMOID.value,
                "description": "One name for every layer, or one per weight layer.",
            },
            "device": {"type": "string", "pattern": f"^({DEVICE_PATTERN})$", "default": "cpu"},
            "dtype": {"enum": [d.value for d in DType], "default": DType.FLOAT32.value},
            "batch": {"type": "integer", "minimum": 1, "maximum": MAX_SIZE, "default": 1},
            "init": {"enum": [i.value for i in Init], "default": Init.NORMAL.value},
            "bias": {"type": "boolean", "default": True},
            "chunk": {
                "type": ["integer", "null"],
                "minimum": 1,
                "maximum": MAX_SIZE,
                "default": None,
                "description": "Rows per forward pass, to fit a large batch; null: all at once.",
            },
            "rng": {
                "enum": [r.value for r in Rng],
                "default": Rng.CPU.value,
                "description": "cpu: the same numbers everywhere; device: drawn on the device, "
                "reproducible only on that device type and model.",
            },
        },
    }

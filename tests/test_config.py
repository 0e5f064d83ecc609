"""Config files: fields, defaults, overrides and located errors (SPEC section 1)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from mlpcli.config import Activation, Config, DType, Init, is_override, load
from mlpcli.errors import ConfigError, ExitCode, MlpcliError, UsageError

from .conftest import CONFIGS


def test_builtin_default_is_the_notebook_network() -> None:
    config = load(None)
    assert config == Config(
        name="default",
        seed=7,
        layers=(3, 2, 1),
        activations=(Activation.SIGMOID, Activation.SIGMOID),
        device="cpu",
    )


def test_every_field_read_and_typed(write_config: Callable[..., Path]) -> None:
    path = write_config(
        "name: wide\nseed: 12\nlayers: [4, 8, 2]\nactivation: [relu, softmax]\n"
        "device: auto\ndtype: bfloat16\nbatch: 5\ninit: xavier\nbias: false\n"
    )
    config = load(path)
    assert config.name == "wide"
    assert config.seed == 12
    assert config.layers == (4, 8, 2)
    assert config.activations == (Activation.RELU, Activation.SOFTMAX)
    assert config.device == "auto"
    assert config.dtype is DType.BFLOAT16
    assert config.batch == 5
    assert config.init is Init.XAVIER
    assert config.bias is False


def test_defaults_and_name_from_file_stem(write_config: Callable[..., Path]) -> None:
    config = load(write_config("layers: [2, 3]\n", name="tiny.yaml"))
    assert (config.name, config.seed, config.device, config.dtype) == (
        "tiny",
        0,
        "cpu",
        DType.FLOAT32,
    )
    assert (config.batch, config.init, config.bias) == (1, Init.NORMAL, True)
    assert config.activations == (Activation.SIGMOID,)


def test_one_activation_name_applies_to_every_layer(write_config: Callable[..., Path]) -> None:
    config = load(write_config("layers: [2, 3, 4, 5]\nactivation: tanh\n"))
    assert config.activations == (Activation.TANH,) * 3


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path: Path) -> None:
    assert load(path).name == path.stem


def test_overrides_replace_fields_and_are_read_as_yaml() -> None:
    config = load(None, ["seed=3", "layers=[3, 4, 1]", "activation=[relu, identity]", "bias=false"])
    assert (config.seed, config.layers, config.bias) == (3, (3, 4, 1), False)
    assert config.activations == (Activation.RELU, Activation.IDENTITY)
    assert config.name == "default"


def test_override_names_its_source_in_errors() -> None:
    with pytest.raises(ConfigError, match=r"^override 'layers=\[3,0\]': layers\[1\]: must be >= 1"):
        load(None, ["layers=[3,0]"])


@pytest.mark.parametrize(
    ("argument", "expected"),
    [("seed=3", True), ("layers=[1,2]", True), ("configs/a=b.yaml", False), ("net.yaml", False)],
)
def test_is_override(argument: str, expected: bool) -> None:
    assert is_override(argument) is expected


def test_to_dict_round_trips_through_yaml(write_config: Callable[..., Path]) -> None:
    config = load(None, ["activation=[relu, softmax]", "dtype=float16", "batch=3"])
    again = load(write_config(yaml.safe_dump(config.to_dict())))
    assert again == config


# One row per bad input: the file's text, the exit code, the error line after "path".
BAD_CONFIGS = [
    ("layer: [3, 2, 1]\n", r":1:1: unknown key 'layer' \(did you mean 'layers'\?\)"),
    ("layers: [3, 2, 0]\n", r":1:16: layers\[2\]: must be >= 1, got 0"),
    ("layers: [3]\n", r":1:9: layers: needs 2 to 1025 sizes \(input, ..., output\), got 1"),
    ("layers: 3\n", r":1:9: layers: expected a list, got integer '3'"),
    ("layers: [3, 2.5]\n", r":1:13: layers\[1\]: expected an integer, got float '2.5'"),
    ("layers: [3, true]\n", r":1:13: layers\[1\]: expected an integer, got boolean 'true'"),
    ("layers: [4611686018427387904, 2]\n", r":1:10: layers\[0\]: must be <= 2147483647"),
    ("seed: 1\n", r": layers: required field is missing"),
    ('layers: [3, 2]\nseed: "7"\n', r":2:7: seed: expected an integer, got string '7'"),
    ("layers: [3, 2]\nseed: -1\n", r":2:7: seed: must be >= 0, got -1"),
    ("layers: [3, 2]\nseed: 9223372036854775808\n", r":2:7: seed: must be <= 9223372036854775807"),
    ("layers: [3, 2]\nseed: " + "9" * 5000 + "\n", r":2:7: seed: must be <= \d+, got a 5000-digit"),
    ("layers: [3, 2]\nseed: 010\n", r":2:7: seed: '010' is YAML 1.1 notation .* for 8; write 8"),
    ("layers: [3, 2]\nseed: 1_000\n", r":2:7: seed: '1_000' is YAML 1.1 notation .* write 1000"),
    ("layers: [3, 2]\nseed: !!int abc\n", r":2:7: seed: 'abc' is not a plain decimal integer"),
    ("layers: [3, 2]\nseed: 7.0\n", r":2:7: seed: expected an integer, got float '7.0'; write 7"),
    (
        "layers: [3, 2]\nseed: !!seq x\n",
        r":2:7: seed: expected an integer, got a value tagged '!!seq'",
    ),
    (
        "layers: [3, 2]\nseed: 1e3\n",
        r":2:7: seed: expected an integer, got string '1e3'; write 1000",
    ),
    (
        "layers: [3, 2]\nbias: yes\n",
        r":2:7: bias: expected true or false, got 'yes', which YAML 1.1",
    ),
    ('layers: [3, 2]\nbias: "true"\n', r":2:7: bias: expected true or false, got string 'true'"),
    ("layers: [3, 2]\nbatch: 0\n", r":2:8: batch: must be >= 1, got 0"),
    (
        "layers: [3, 2]\nactivation: sigmod\n",
        r":2:13: activation: unknown activation 'sigmod' \(did you mean 'sigmoid'\?\)",
    ),
    (
        "layers: [3, 2]\nactivation: no\n",
        r":2:13: activation: expected one of .*got 'no', which YAML 1.1",
    ),
    (
        "layers: [3, 2, 1]\nactivation: [relu]\n",
        r":2:13: activation: lists 1 names, but layers has 2",
    ),
    (
        "layers: [3, 2, 1]\nactivation: [relu, swish]\n",
        r":2:20: activation\[1\]: unknown activation 'swish' \(did you mean 'silu'\?\)",
    ),
    (
        "layers: [3, 2]\ndevice: gpu\n",
        r":2:9: device: expected cpu, cuda, cuda:N or auto, got 'gpu'",
    ),
    ("layers: [3, 2]\ndevice: cuda:x\n", r":2:9: device: expected cpu, cuda, cuda:N or auto"),
    (
        "layers: [3, 2]\ndtype: fp16\n",
        r":2:8: dtype: unknown dtype 'fp16' \(did you mean 'float16'\?\)",
    ),
    ("layers: [3, 2]\ninit: he\n", r":2:7: init: unknown init 'he'"),
    ("layers: [3, 2]\nname: ''\n", r":2:7: name: must be 1-200 printable characters"),
    ("layers: [3, 2]\nlayers: [3, 2]\n", r":2:1: layers: duplicate key \(first set on line 1\)"),
    ("", r": empty file"),
    ("- 3\n- 2\n", r":1:1: expected a mapping of fields, got a list"),
    ("layers: [3, 2\n", r":2:1: invalid YAML: expected ',' or ']'"),
    ("\tlayers: [3, 2]\n", r":1:1: invalid YAML: found character '\\t'"),
    ("layers: &sizes [3, 2]\n", r":1:9: YAML anchors and aliases are not supported"),
    (
        "layers: [3, 2]\n<<: {seed: 1}\n",
        r":2:1: expected a field name, got a value tagged '!!merge'",
    ),
    (
        "layers: !!python/tuple [3, 2]\n",
        r":1:9: layers: expected a list, got a value tagged '!!python/tuple'",
    ),
    ("layers: [3, 2]\n---\nlayers: [3, 2]\n", r":2:1: several YAML documents"),
    ("layers: " + "[" * 50 + "]" * 50 + "\n", r": nested deeper than 8 levels"),
    (
        "layers: [3, 2]\nseed: 2024-02-30\n",
        r":2:7: seed: expected an integer, got a value tagged '!!timestamp'",
    ),
    ("layers: [3, 2]\nname: a\x00b\n", r":2:8: invalid YAML: character U\+0000 is not allowed"),
    (b"layers: [3, 2]\nname: \xff\n", r": not UTF-8 text \(byte 0xff at offset 21\)"),
]


@pytest.mark.parametrize(("text", "message"), BAD_CONFIGS)
def test_bad_config_is_one_located_error(
    write_config: Callable[..., Path], text: str | bytes, message: str
) -> None:
    path = write_config(text)
    with pytest.raises(ConfigError) as caught:
        load(path)
    line = str(caught.value)
    assert line.startswith(str(path))
    assert "\n" not in line
    assert re.search(message, line.removeprefix(str(path))), line
    assert caught.value.exit_code == ExitCode.USAGE


def test_file_larger_than_a_mebibyte_is_refused(write_config: Callable[..., Path]) -> None:
    path = write_config("layers: [3, 2]\n" + "#" * (1 << 20) + "\n")
    with pytest.raises(ConfigError, match="larger than 1 MiB"):
        load(path)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing.yaml", "no such file"),
        (lambda tmp: tmp, "is a directory"),
    ],
)
def test_unreadable_path_is_a_usage_error(
    tmp_path: Path, make: Callable[[Path], Path], message: str
) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        load(make(tmp_path))
    assert isinstance(caught.value, MlpcliError)
    assert caught.value.exit_code == ExitCode.USAGE

"""Config files: fields, defaults, overrides and located errors (docs/contract.md section 1)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from mlpcli.errors import ConfigError, ExitCode, MlpcliError, UsageError
from mlpcli.loading.loader import load
from mlpcli.loading.yamlnodes import is_override
from mlpcli.model.config import Activation, Config, Device, DType, Init, Rng

from .catalogue import BAD_CONFIG_FILES, Case
from .conftest import CONFIGS


def test_builtin_default_is_the_notebook_network() -> None:
    config = load(None)
    assert config == Config(
        name="default",
        seed=7,
        layers=(3, 2, 1),
        activations=(Activation.SIGMOID, Activation.SIGMOID),
        device=Device("cpu"),
    )


def test_every_field_read_and_typed(write_config: Callable[..., Path]) -> None:
    path = write_config(
        "name: wide\nseed: 12\nlayers: [4, 8, 2]\nactivation: [relu, softmax]\n"
        "device: auto\ndtype: bfloat16\nbatch: 5\ninit: xavier\nbias: false\nchunk: 2\n"
        "rng: device\n"
    )
    config = load(path)
    assert config.name == "wide"
    assert config.seed == 12
    assert config.layers == (4, 8, 2)
    assert config.activations == (Activation.RELU, Activation.SOFTMAX)
    assert config.device == Device("auto")
    assert config.dtype is DType.BFLOAT16
    assert config.batch == 5
    assert config.init is Init.XAVIER
    assert config.bias is False
    assert config.chunk == 2
    assert config.rng is Rng.DEVICE


def test_defaults_and_name_from_file_stem(write_config: Callable[..., Path]) -> None:
    config = load(write_config("layers: [2, 3]\n", name="tiny.yaml"))
    assert (config.name, config.seed, str(config.device), config.dtype) == (
        "tiny",
        0,
        "cpu",
        DType.FLOAT32,
    )
    assert (config.batch, config.init, config.bias, config.chunk) == (1, Init.NORMAL, True, None)
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


@pytest.mark.parametrize("case", BAD_CONFIG_FILES, ids=lambda case: case.message[:40])
def test_bad_config_is_one_located_error(write_config: Callable[..., Path], case: Case) -> None:
    path, message = write_config(case.text), case.message
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
        (lambda tmp: tmp, "a directory, not a config file"),
    ],
)
def test_unreadable_path_is_a_usage_error(
    tmp_path: Path, make: Callable[[Path], Path], message: str
) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        load(make(tmp_path))
    assert isinstance(caught.value, MlpcliError)
    assert caught.value.exit_code == ExitCode.USAGE

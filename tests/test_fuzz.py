"""Property tests: the config loader is total, and valid configs survive a trip through YAML.

How many examples each test tries is the Hypothesis profile's (tests/conftest.py): `ci` by
default, `HYPOTHESIS_PROFILE=deep` for a long search.
"""

from __future__ import annotations

import string
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from mlpcli.errors import ConfigError, MlpcliError
from mlpcli.loading.loader import load
from mlpcli.model.config import KNOWN_KEYS, MAX_SEED, Activation, Config, DType, Init
from mlpcli.report.views.config import to_yaml

# Characters that steer YAML's scanner, so that random text reaches deep into it.
YAML_ALPHABET = (
    string.ascii_letters[:8] + string.digits + " \t\n:-,[]{}#&*!|>'\"%@`?~._+=\x00\xa0\u2028é"
)
YAML_WORDS = [
    *KNOWN_KEYS, *(a.value for a in Activation), *(d.value for d in DType), "cuda:0", "yes", "no",
    "~", "null", "true", "0x1F", "010", "1e3", ".inf", "-.nan", "1:30", "2024-02-30", "<<", "&a",
    "*a", "!!int", "!!python/object:os.system", "!!binary", "---", "...", "%YAML 1.1", "? ",
]  # fmt: skip
yaml_like_text = st.lists(
    st.one_of(st.sampled_from(YAML_WORDS), st.text(YAML_ALPHABET, max_size=6)), max_size=40
).map(lambda parts: "".join(parts))

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(YAML_WORDS),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)
config_like = st.dictionaries(
    st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=8)),
    values,
    max_size=len(KNOWN_KEYS) + 2,
)


def loads_or_refuses(tmp_path: Path, data: bytes) -> None:
    """The one property: a valid config, or one MlpcliError with a one-line message."""
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    try:
        config = load(path)
    except MlpcliError as error:
        refusal = error
    else:
        assert isinstance(config, Config)
        return
    assert "\n" not in str(refusal)
    if isinstance(refusal, ConfigError):
        assert str(refusal).startswith(str(path))


@given(data=st.binary(max_size=300))
def test_arbitrary_bytes(tmp_path: Path, data: bytes) -> None:
    loads_or_refuses(tmp_path, data)


@given(text=yaml_like_text)
def test_yaml_like_text(tmp_path: Path, text: str) -> None:
    loads_or_refuses(tmp_path, text.encode("utf-8", "surrogatepass"))


@given(document=config_like, flow=st.booleans())
def test_config_shaped_documents(tmp_path: Path, document: dict[str, object], flow: bool) -> None:
    text = yaml.safe_dump(document, default_flow_style=flow, allow_unicode=True)
    loads_or_refuses(tmp_path, text.encode())


valid_configs = st.builds(
    lambda name, seed, layers, activation, per_layer, device, dtype, batch, init, bias, chunk, rng: {  # noqa: E501
        "name": name,
        "seed": seed,
        "layers": layers,
        "activation": [activation] * (len(layers) - 1) if per_layer else activation,
        "device": device,
        "dtype": dtype,
        "batch": batch,
        "init": init,
        "bias": bias,
        "chunk": chunk,
        "rng": rng,
    },
    name=st.text(
        string.ascii_letters + string.digits + " _-[]/:#'\"é", min_size=1, max_size=30
    ).filter(lambda s: s.strip() != ""),
    seed=st.integers(0, MAX_SEED),
    layers=st.lists(st.integers(1, 2**31 - 1), min_size=2, max_size=6),
    activation=st.sampled_from([a.value for a in Activation]),
    per_layer=st.booleans(),
    device=st.sampled_from(["cpu", "cuda", "cuda:3", "auto"]),
    dtype=st.sampled_from([d.value for d in DType]),
    batch=st.integers(1, 2**31 - 1),
    init=st.sampled_from([i.value for i in Init]),
    bias=st.booleans(),
    chunk=st.none() | st.integers(1, 2**31 - 1),
    rng=st.sampled_from(["cpu", "device"]),
)


@given(document=valid_configs)
def test_valid_configs_round_trip(tmp_path: Path, document: dict[str, object]) -> None:
    path = tmp_path / "valid.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    config = load(path)
    again = tmp_path / "again.yaml"
    again.write_text(to_yaml(config))
    assert load(again) == config
    assert config.to_dict()["layers"] == document["layers"]


# --- files: every input and weights format, random and mutated, read or refused in one line ---


def _seed_files(directory: Path) -> dict[str, bytes]:
    """A valid file of each format, written by the library users write it with."""
    import numpy as np
    import pandas as pd
    import torch
    from safetensors.numpy import save_file

    x = np.random.default_rng(0).random((4, 3))
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    writers = {
        "inputs.csv": lambda p: frame.to_csv(p),
        "inputs.tsv": lambda p: frame.to_csv(p, sep="\t", index=False),
        "inputs.json": lambda p: frame.to_json(p),
        "inputs.jsonl": lambda p: frame.to_json(p, orient="records", lines=True),
        "inputs.npy": lambda p: np.save(p, x),
        "inputs.parquet": lambda p: frame.to_parquet(p),
        "inputs.feather": lambda p: frame.to_feather(p),
        "inputs.safetensors": lambda p: save_file({"features": x.astype(np.float32)}, str(p)),
        "weights.safetensors": lambda p: save_file(
            {
                "W1": np.ones((3, 2), np.float32),
                "B1": np.ones(2, np.float32),
                "W2": np.ones((2, 1), np.float32),
            },
            str(p),
        ),
        "weights.pt": lambda p: torch.save(
            torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1)).state_dict(), p
        ),
    }
    seeds = {}
    for name, write in writers.items():
        path = directory / name
        write(path)
        seeds[name] = path.read_bytes()
    return seeds


SEED_NAMES = [
    "inputs.csv", "inputs.tsv", "inputs.json", "inputs.jsonl", "inputs.npy", "inputs.parquet",
    "inputs.feather", "inputs.safetensors", "weights.safetensors", "weights.pt",
]  # fmt: skip
edits = st.lists(
    st.tuples(
        st.sampled_from(["set", "delete", "insert", "truncate"]),
        st.floats(0, 1, exclude_max=True),
        st.binary(min_size=1, max_size=8),
    ),
    min_size=1,
    max_size=4,
)


def _mutated(data: bytes, changes: list[tuple[str, float, bytes]]) -> bytes:
    out = bytearray(data)
    for kind, where, blob in changes:
        if not out:
            break
        i = int(where * len(out))
        if kind == "set":
            out[i : i + len(blob)] = blob[: len(out) - i]
        elif kind == "delete":
            del out[i : i + len(blob)]
        elif kind == "insert":
            out[i:i] = blob
        else:
            del out[i:]
    return bytes(out)


def reads_or_refuses(path: Path) -> None:
    """The readers' one property: the file's values, or one MlpcliError of one line naming it
    (no other exception: that would be exit 4)."""
    import torch

    from mlpcli.data import features, weightfiles

    try:
        if path.stem == "inputs":
            features.describe(str(path))
            features.read(str(path))
        else:
            weights = weightfiles.describe(str(path))
            list(weightfiles.layers(weights, torch.float32, torch.device("cpu")))
    except MlpcliError as error:
        refusal = str(error)
    else:
        return
    assert "\n" not in refusal
    assert refusal.startswith(str(path))


@pytest.fixture(scope="module")
def seed_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return _seed_files(tmp_path_factory.mktemp("seeds"))


@pytest.mark.parametrize("name", SEED_NAMES)
@given(data=st.data())
def test_files_random_and_mutated(
    tmp_path_factory: pytest.TempPathFactory,
    seed_files: dict[str, bytes],
    name: str,
    data: st.DataObject,
) -> None:
    if data.draw(st.booleans(), label="random"):
        content = data.draw(st.binary(max_size=400), label="bytes")
    else:
        content = _mutated(seed_files[name], data.draw(edits, label="edits"))
    path = tmp_path_factory.mktemp("fuzz") / name
    path.write_bytes(content)
    reads_or_refuses(path)

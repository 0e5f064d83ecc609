"""The catalogue of bad inputs: config files that must be refused with one located line.

`test_config` checks each against the loader, `test_reliability` through the whole command line;
docs/reliability.md counts them by category, and a test keeps those counts true.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    """A config file's text, and a regex for the error line after its path."""

    category: str
    text: str | bytes
    message: str
    schema_cannot: str = ""  # the README's label for why the JSON Schema accepts it, if it does


BAD_CONFIG_FILES = [
    Case(
        "fields and values",
        "layer: [3, 2, 1]\n",
        r":1:1: unknown key 'layer' \(did you mean 'layers'\?\)",
    ),
    Case("fields and values", "layers: [3, 2, 0]\n", r":1:16: layers\[2\]: must be >= 1, got 0"),
    Case(
        "fields and values",
        "layers: [3]\n",
        r":1:9: layers: needs 2 to 1025 sizes \(input, ..., output\), got 1",
    ),
    Case("fields and values", "layers: 3\n", r":1:9: layers: expected a list, got integer '3'"),
    Case(
        "fields and values",
        "layers: [3, 2.5]\n",
        r":1:13: layers\[1\]: expected an integer, got float '2.5'",
    ),
    Case(
        "fields and values",
        "layers: [3, true]\n",
        r":1:13: layers\[1\]: expected an integer, got boolean 'true'",
    ),
    Case(
        "fields and values",
        "layers: [4611686018427387904, 2]\n",
        r":1:10: layers\[0\]: must be <= 2147483647",
    ),
    Case("fields and values", "seed: 1\n", r": layers: required field is missing"),
    Case(
        "fields and values",
        "layers: [3, 1]\nparallel: mesh\n",
        r":2:11: parallel: unknown parallel 'mesh'; one of: none, data, pipeline, tensor$",
    ),
    Case(
        "fields and values", "layers: [3, 1]\ntimeout: 0\n", r":2:10: timeout: must be >= 1, got 0"
    ),
    Case(
        "fields and values",
        'layers: [3, 2]\nseed: "7"\n',
        r":2:7: seed: expected an integer, got string '7'",
    ),
    Case("fields and values", "layers: [3, 2]\nseed: -1\n", r":2:7: seed: must be >= 0, got -1"),
    Case(
        "fields and values",
        "layers: [3, 2]\nseed: 9223372036854775808\n",
        r":2:7: seed: must be <= 9223372036854775807",
    ),
    Case(
        "fields and values",
        "layers: [3, 2]\nseed: " + "9" * 5000 + "\n",
        r":2:7: seed: must be <= \d+, got a number of 5000 digits",
    ),
    Case(
        "fields and values",
        "layers: [3, 2]\nseed: 010\n",
        r":2:7: seed: '010' is YAML 1.1 notation .* for 8; write 8",
        schema_cannot="YAML 1.1 notation",
    ),
    Case(
        "fields and values",
        "layers: [3, 2]\nseed: 1_000\n",
        r":2:7: seed: '1_000' is YAML 1.1 notation .* write 1000",
        schema_cannot="YAML 1.1 notation",
    ),
    Case(
        "fields and values",
        "layers: [3, 2]\nseed: !!int abc\n",
        r":2:7: seed: 'abc' is not a plain decimal integer",
    ),
    Case(
        "fields and values",
        "layers: [3, 2]\nseed: 7.0\n",
        r":2:7: seed: expected an integer, got float '7.0'; write 7",
        schema_cannot="whole floats",
    ),
    Case(
        "fields and values",
        "layers: [3, 2]\nseed: !!seq x\n",
        r":2:7: seed: expected an integer, got a value tagged '!!seq'",
    ),
    Case(
        "fields and values",
        "layers: [3, 2]\nseed: 1e3\n",
        r":2:7: seed: expected an integer, got string '1e3'; write 1000",
    ),
    Case(
        "fields and values",
        "layers: [3, 2]\nbias: yes\n",
        r":2:7: bias: expected true or false, got 'yes'; write true$",
        schema_cannot="YAML 1.1 notation",
    ),
    Case(
        "fields and values",
        'layers: [3, 2]\nbias: "true"\n',
        r":2:7: bias: expected true or false, got string 'true'",
    ),
    Case(
        "fields and values",
        "layers: [3, 2]\nbias: off\n",
        r":2:7: bias: expected true or false, got 'off'; write false$",
        schema_cannot="YAML 1.1 notation",
    ),
    Case(
        "fields and values",
        "layers: [3, 2, 1]\nactivation: Relu\n",
        r":2:13: activation: unknown activation 'Relu' \(did you mean 'relu'\?\)",
    ),
    Case(
        "fields and values",
        "layers: [3 2 1]\n",
        r":1:10: layers: read '3 2 1' as one string: separate the sizes with commas, \[3, 2, 1\]$",
    ),
    Case(
        "fields and values",
        "# a config\n# with only comments\n",
        r": holds no keys, only comments; a config needs at least `layers`$",
    ),
    Case(
        "YAML and encoding",
        "layers: [3, 2]\n\tseed: 1\n",
        r":2:1: invalid YAML: found character '\\t' that cannot start any token; indent with spaces",
    ),
    Case("fields and values", "layers: [3, 2]\nbatch: 0\n", r":2:8: batch: must be >= 1, got 0"),
    Case("fields and values", "layers: [3, 2]\nchunk: 0\n", r":2:8: chunk: must be >= 1, got 0"),
    Case(
        "fields and values",
        "layers: [3, 2]\nrng: gpu\n",
        r":2:6: rng: unknown rng 'gpu' \(did you mean 'device'\?\); one of: cpu, device",
    ),
    Case(
        "fields and values",
        "layers: [3, 2]\nactivation: sigmod\n",
        r":2:13: activation: unknown activation 'sigmod' \(did you mean 'sigmoid'\?\)",
    ),
    Case(
        "fields and values",
        "layers: [3, 2]\nactivation: no\n",
        r":2:13: activation: expected one of .*got 'no', which YAML 1.1",
    ),
    Case(
        "fields and values",
        "layers: [3, 2, 1]\nactivation: [relu]\n",
        r":2:13: activation: lists 1 name, but layers has 2 weight layers",
        schema_cannot="activation list length",
    ),
    Case(
        "fields and values",
        "layers: [3, 2, 1]\nactivation: [relu, swish]\n",
        r":2:20: activation\[1\]: unknown activation 'swish' \(did you mean 'silu'\?\)",
    ),
    Case(
        "fields and values",
        "layers: [3, 2]\ndevice: gpu\n",
        r":2:9: device: expected cpu, cuda, cuda:N or auto, got 'gpu'",
    ),
    Case(
        "fields and values",
        "layers: [3, 2]\ndevice: cuda:x\n",
        r":2:9: device: expected cpu, cuda, cuda:N or auto",
    ),
    Case(
        "fields and values",
        "layers: [3, 2]\ndtype: fp16\n",
        r":2:8: dtype: unknown dtype 'fp16' \(did you mean 'float16'\?\)",
    ),
    Case("fields and values", "layers: [3, 2]\ninit: he\n", r":2:7: init: unknown init 'he'"),
    Case(
        "fields and values",
        "layers: [3, 2]\nname: ''\n",
        r":2:7: name: must be 1-200 printable characters",
    ),
    Case(
        "fields and values",
        "layers: [3, 2.0]\n",
        r":1:13: layers\[1\]: expected an integer, got float '2\.0'; write 2$",
        schema_cannot="whole floats",
    ),
    Case(
        "fields and values",
        "layers: [3, 2]\nseed: 0x10\n",
        r":2:7: seed: '0x10' is YAML 1\.1 notation .* for 16; write 16$",
        schema_cannot="YAML 1.1 notation",
    ),
    *(
        Case(
            "fields and values",
            f"layers: [3, 2]\nname: {name}\n",
            r":2:7: name: must be 1-200 printable characters on one line",
        )
        for name in ("'   '", '"a\\tb"', '"a\\nb"', '"a\\u00a0b"', '"a\\u200bb"')
    ),
    Case(
        "fields and values",
        "layers: [3, 2]\nlayers: [3, 2]\n",
        r":2:1: layers: duplicate key \(first set on line 1\)",
        schema_cannot="YAML structure",
    ),
    Case("YAML and encoding", "", r": empty file"),
    Case("YAML and encoding", "- 3\n- 2\n", r":1:1: expected a mapping of fields, got a list"),
    Case("YAML and encoding", "layers: [3, 2\n", r":2:1: invalid YAML: expected ',' or ']'"),
    Case("YAML and encoding", "\tlayers: [3, 2]\n", r":1:1: invalid YAML: found character '\\t'"),
    Case(
        "YAML and encoding",
        "layers: &sizes [3, 2]\n",
        r":1:9: YAML anchors and aliases are not supported",
        schema_cannot="YAML structure",
    ),
    Case(
        "YAML and encoding",
        "layers: [3, 2]\n<<: {seed: 1}\n",
        r":2:1: expected a field name, got a value tagged '!!merge'",
        schema_cannot="YAML structure",
    ),
    Case(
        "YAML and encoding",
        "layers: !!python/tuple [3, 2]\n",
        r":1:9: layers: expected a list, got a value tagged '!!python/tuple'",
    ),
    Case(
        "YAML and encoding",
        "layers: [3, 2]\n---\nlayers: [3, 2]\n",
        r":2:1: several YAML documents",
    ),
    Case(
        "YAML and encoding",
        "layers: " + "[" * 50 + "]" * 50 + "\n",
        r":1:16: nested deeper than 8 levels",
    ),
    Case(
        "YAML and encoding",
        "layers: [" + "1, " * 6000 + "1]\n",
        r":1:14998: more than 5000 YAML values; not a config",
    ),
    Case(
        "fields and values",
        "layers: [3, 2]\nseed: 2024-02-30\n",
        r":2:7: seed: expected an integer, got a value tagged '!!timestamp'",
    ),
    Case(
        "YAML and encoding",
        "layers: [3, 2]\nname: a\x00b\n",
        r":2:8: invalid YAML: character U\+0000 is not allowed",
    ),
    Case(
        "YAML and encoding",
        b"layers: [3, 2]\nname: \xff\n",
        r": not UTF-8 text \(byte 0xff at offset 21\)",
    ),
    Case(
        "YAML and encoding",
        "layers: [3, 1]\n".encode("utf-16"),
        r": UTF-16 text \(by its byte order mark\); save the config as UTF-8$",
        schema_cannot="UTF-16",
    ),
]

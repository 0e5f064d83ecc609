"""`mlpcli draw`: the SVG's structure, a real renderer, Mermaid, `--values`, the README picture."""

from __future__ import annotations

import io
import itertools
import math
import re
import struct
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import numpy as np
import pytest
import resvg_py
import torch
from safetensors.numpy import save_file

from mlpcli.engine import network
from mlpcli.loading.loader import load

from .conftest import ROOT, TWO_LAYER, invoke

SVG = "{http://www.w3.org/2000/svg}"
PICTURE = ROOT / "docs" / "two_layer.svg"


def drawn(*args: str) -> ET.Element:
    code, out, err = invoke("draw", *args)
    assert (code, err) == (0, "")
    return ET.fromstring(out)


def of_class(svg: ET.Element, tag: str, name: str) -> list[ET.Element]:
    return [e for e in svg.iter(f"{SVG}{tag}") if e.get("class") == name]


def test_the_notebook_network_has_its_units_and_connections() -> None:
    svg = drawn(TWO_LAYER)
    assert svg.get("viewBox") == f"0 0 {svg.get('width')} {svg.get('height')}"
    assert svg.findtext(f"{SVG}title") == "two_layer: layers 3 → 2 → 1"
    assert len(of_class(svg, "circle", "unit")) == 6
    assert len(of_class(svg, "line", "edge")) == 8
    texts = " ".join("".join(t.itertext()) for t in svg.iter(f"{SVG}text"))
    for label in ("features (3)", "h1 (2)", "output (1)", "W1 (3×2)", "B1 (1×2)", "W2 (2×1)"):
        assert label in texts


def test_a_wide_layer_shows_its_ends_and_its_true_count() -> None:
    svg = drawn("layers=[3,4096,1]")
    assert len(of_class(svg, "circle", "unit")) == 3 + 8 + 1
    assert len(of_class(svg, "line", "edge")) == 3 * 8 + 8 * 1
    texts = [("".join(t.itertext()), t.get("class")) for t in svg.iter(f"{SVG}text")]
    assert ("h1 (4096)", "label") in texts
    assert ("4,088 more", "more") in texts


def test_a_deep_network_stays_bounded() -> None:
    sizes = ",".join(["64"] * 1025)
    svg = drawn(f"layers=[{sizes}]")
    assert len(of_class(svg, "circle", "unit")) == 7 * 8
    texts = ["".join(t.itertext()) for t in svg.iter(f"{SVG}text")]
    assert "… 1018 layers …" in texts


def test_the_name_is_text_never_markup() -> None:
    code, out, _ = invoke("draw", "name='<script>alert(1)</script>&'")
    assert code == 0
    svg = ET.fromstring(out)
    assert not list(svg.iter(f"{SVG}script"))
    assert svg.findtext(f"{SVG}title", "").startswith("<script>alert(1)</script>&: layers")


def png_size_and_colours(png: bytes) -> tuple[int, int, int]:
    """Width, height and the number of distinct bytes of a PNG's pixel data."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    data, at = b"", 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind = png[at + 4 : at + 8]
        if kind == b"IDAT":
            data += png[at + 8 : at + 8 + length]
        at += 12 + length
    return width, height, len(set(zlib.decompress(data)))


def test_a_real_renderer_draws_it_at_its_size() -> None:
    code, out, _ = invoke("draw", TWO_LAYER)
    assert code == 0
    svg = ET.fromstring(out)
    width, height, colours = png_size_and_colours(bytes(resvg_py.svg_to_bytes(svg_string=out)))
    assert (width, height) == (int(svg.get("width", 0)), int(svg.get("height", 0)))
    assert colours > 10  # not blank: lines, circles and text in greys


def test_mermaid_draws_a_small_network_unit_by_unit() -> None:
    code, out, _ = invoke("draw", TWO_LAYER, "--format", "mermaid")
    assert code == 0
    assert out.startswith('---\ntitle: "two_layer"\n---\nflowchart LR\n')
    assert len(re.findall(r"^    c\du\d+\(\(\d+\)\)$", out, re.MULTILINE)) == 6
    assert len(re.findall(r"^  c\du\d+ --- c\du\d+$", out, re.MULTILINE)) == 8  # the notebook's
    assert '  c0 -- "W1 3×2, sigmoid" --> c1' in out


def test_a_mermaid_title_shows_markup_characters_as_written() -> None:
    """Mermaid shows a title's `&` as `&amp;` and `<b>` as written markup after its sanitizer:
    the title carries the full-width forms, which it leaves alone, and non-ASCII as is."""
    code, out, _ = invoke("draw", "name=R&D <v2> «ü»", "-f", "mermaid")
    assert code == 0
    title = out.splitlines()[1]
    amp, lt, gt = "\N{FULLWIDTH AMPERSAND}", "\uff1c", "\uff1e"  # less-than and greater-than
    assert title == f'title: "R{amp}D {lt}v2{gt} «ü»"'


def _chart(*args: str) -> tuple[list[str], list[tuple[str, str]]]:
    """A layer-level chart's nodes and its edges (from, to)."""
    code, out, _ = invoke("draw", *args, "-f", "mermaid")
    assert code == 0
    nodes = re.findall(r"^  (\w+)\[", out, re.MULTILINE)
    edges = re.findall(r"^  (\w+) (?:-- \"[^\"]*\" )?--> (\w+)$", out, re.MULTILINE)
    assert " --- " not in out  # no unit-to-unit edges
    return nodes, edges


@pytest.mark.parametrize(
    ("sizes", "nodes", "edges"),
    [
        ("[3,4096,1]", 3, 2),  # a layer wider than the units shown: no unit is drawn alone
        ("[784,256,128,64,10]", 5, 4),  # configs/deep_relu.yaml: was 262 curves
        ("[8,8,8,8,8,8,8]", 7, 6),  # 384 connections: was a 8,398 px strip
        ("[" + ",".join(["64"] * 30) + "]", 8, 7),  # 7 columns around the gap
        ("[" + ",".join(["4"] * 101) + "]", 8, 7),  # 100 layers: was 11,102 px
    ],
)
def test_mermaid_charts_any_other_network_layer_by_layer(
    sizes: str, nodes: int, edges: int
) -> None:
    found_nodes, found_edges = _chart(f"layers={sizes}")
    assert len(found_nodes) == nodes
    assert len(found_edges) == edges <= 150
    connected = {node for edge in found_edges for node in edge}
    assert connected == set(found_nodes)  # no node without an edge


def test_mermaid_labels_each_weight_layer_with_its_shape_and_activation() -> None:
    code, out, _ = invoke(
        "draw", "layers=[784,256,10]", "activation=[relu,softmax]", "-f", "mermaid"
    )
    assert code == 0
    assert '  c0["features (784)"]' in out
    assert '  c0 -- "W1 784×256, relu" --> c1' in out
    assert '  c1 -- "W2 256×10, softmax" --> c2' in out


def test_values_colour_connections_by_the_weights_sign() -> None:
    svg = drawn("layers=[4,6,3]", "--values")
    built = network.build(load(None, ["layers=[4,6,3]"]), torch.device("cpu"))
    edges = of_class(svg, "line", "edge")
    assert len(edges) == 4 * 6 + 6 * 3
    for edge in edges:
        k, i, j = map(int, re.findall(r"\d+", edge.findtext(f"{SVG}title", "").split(" = ")[0]))
        weight = built.weights[k - 1][i, j].item()
        found = re.search(r"stroke:#(..)(..)(..)", edge.get("style", ""))
        assert found is not None
        red, _, blue = (int(c, 16) for c in found.groups())
        assert (red > blue) == (weight > 0), weight


def _numbers(svg: ET.Element, tag: str, name: str) -> dict[str, float]:
    """Each element's tooltip, `W1[0,1] = -0.42` or `h1[3] = 0.5`, as {"W1[0,1]": -0.42}."""
    found = {}
    for element in of_class(svg, tag, name):
        label, number = element.findtext(f"{SVG}title", "").split(" = ")
        found[label] = float(number)
    return found


def test_values_of_a_wide_deep_network_are_those_of_the_units_drawn() -> None:
    """deep_relu (784 → 256 → 128 → 64 → 10) with no options: the same elision as the plain
    picture, and each drawn unit and connection carries its own number, checked against a
    forward pass written here with torch.nn.functional."""
    config = ROOT / "configs" / "deep_relu.yaml"
    code, out, err = invoke("draw", str(config), "--values")
    assert (code, err) == (0, "")
    assert len(out.encode()) < 200_000
    svg = ET.fromstring(out)
    plain = drawn(str(config))
    assert len(of_class(svg, "circle", "unit")) == len(of_class(plain, "circle", "unit")) == 40
    assert len(of_class(svg, "line", "edge")) == len(of_class(plain, "line", "edge"))
    built = network.build(load(config, []), torch.device("cpu"))
    h, tensors = built.features[:1], [built.features[0]]
    for k, (W, B) in enumerate(zip(built.weights, built.biases, strict=True), 1):
        h = torch.nn.functional.linear(h, W.T, B.reshape(-1))
        h = torch.relu(h) if k < len(built.weights) else torch.softmax(h, dim=1)
        tensors.append(h[0])
    names = ["features", "h1", "h2", "h3", "output"]
    units = _numbers(svg, "circle", "unit")
    assert {label.split("[")[0] for label in units} == set(names)
    for label, value in units.items():
        name, unit = label.rstrip("]").split("[")
        assert value == pytest.approx(tensors[names.index(name)][int(unit)].item(), rel=1e-3)
    weights = _numbers(svg, "line", "edge")
    for label, w in weights.items():
        k, i, j = map(int, re.findall(r"\d+", label))
        assert w == pytest.approx(built.weights[k - 1][i, j].item(), rel=1e-3)
    assert "W1[783,255]" in weights  # the last unit of each end is drawn


def test_values_draw_thick_lines_over_thin_ones() -> None:
    svg = drawn("layers=[6,8,4]", "--values")
    widths = [
        float(re.search(r"stroke-width:([\d.]+)", e.get("style", ""))[1])  # type: ignore[index]
        for e in of_class(svg, "line", "edge")
    ]
    assert len(widths) == 6 * 8 + 8 * 4
    assert widths == sorted(widths)
    assert widths[0] < widths[-1]


def _legend(svg: ET.Element) -> list[tuple[float, str]]:
    """The labels under the legend's bars, (x, text), from left to right, weights' row first."""
    bars = [float(r.get("y") or 0) for r in of_class(svg, "rect", "legend")]
    return [
        (float(t.get("x") or 0), "".join(t.itertext()))
        for t in of_class(svg, "text", "layer")
        if float(t.get("y") or 0) - 25 in bars
    ]


def test_values_put_each_layer_on_its_own_scale_and_print_the_units() -> None:
    """Each weight layer and each column is coloured from minus to plus its own largest
    magnitude, the legend labels each bar's ends and 0, and each unit's value is printed
    beside it: the notebook's picture shows its output, 0.3171."""
    svg = drawn(TWO_LAYER, "--values")
    units, weights = _numbers(svg, "circle", "unit"), _numbers(svg, "line", "edge")
    tops = [
        max(abs(w) for label, w in weights.items() if label.startswith(f"W{k}[")) for k in (1, 2)
    ]
    tops += [
        max(abs(v) for label, v in units.items() if label.startswith(f"{name}["))
        for name in ("features", "h1", "output")
    ]
    labels = [text for _, text in _legend(svg)]
    assert labels == [piece for top in tops for piece in (f"-{top:.2g}", "0", f"{top:.2g}")]
    fills = {
        e.findtext(f"{SVG}title", "").split(" = ")[0]: e.get("style")
        for e in of_class(svg, "circle", "unit")
    }
    assert units["output[0]"] == pytest.approx(0.3171, abs=1e-4)
    assert fills["output[0]"] == "fill:#b2182b"  # the largest of its column: its scale's end
    printed = ["".join(t.itertext()) for t in of_class(svg, "text", "value")]
    assert printed == [f"{units[label]:.4g}" for label in units]
    assert "0.3171" in printed
    strokes = {
        e.findtext(f"{SVG}title", "").split(" = ")[0]: e.get("style", "")
        for e in of_class(svg, "line", "edge")
    }
    for k, top in enumerate(tops[:2], 1):  # each layer's heaviest line is its scale's end
        heaviest = max(
            (label for label in weights if label.startswith(f"W{k}[")),
            key=lambda label: abs(weights[label]),
        )
        assert "stroke-width:4.00" in strokes[heaviest]
        assert abs(weights[heaviest]) == pytest.approx(top)


def test_values_show_a_small_first_layer_beside_a_large_last_one() -> None:
    """deep_relu's first layer (about ±0.14 drawn) beside its last (±0.46): on one scale its
    lines were nearly invisible; each layer's heaviest line is now at full colour."""
    svg = drawn(str(ROOT / "configs" / "deep_relu.yaml"), "--values")
    weights = _numbers(svg, "line", "edge")
    styles = {
        e.findtext(f"{SVG}title", "").split(" = ")[0]: e.get("style", "")
        for e in of_class(svg, "line", "edge")
    }
    for k in range(1, 5):
        layer = [label for label in weights if label.startswith(f"W{k}[")]
        heaviest = max(layer, key=lambda label: abs(weights[label]))
        assert re.search(r"stroke:#(b2182b|2166ac)", styles[heaviest]), (k, styles[heaviest])
    first = max(abs(w) for label, w in weights.items() if label.startswith("W1["))
    last = max(abs(w) for label, w in weights.items() if label.startswith("W4["))
    assert first < last / 2
    assert len(of_class(svg, "text", "value")) == 40  # 8 units a column, the ellipsis aside


def test_values_that_are_not_finite_are_black_and_left_off_the_scale() -> None:
    """float16 overflows in this identity network: its outputs are infinite."""
    svg = drawn("layers=[512,512,512,512,4]", "dtype=float16", "activation=identity", "--values")
    units = _numbers(svg, "circle", "unit")
    fills = {
        e.findtext(f"{SVG}title", "").split(" = ")[0]: e.get("style")
        for e in of_class(svg, "circle", "unit")
    }
    infinite = [label for label, value in units.items() if not math.isfinite(value)]
    assert infinite
    assert all(fills[label] == "fill:#000000" for label in infinite)
    outputs = [value for label, value in units.items() if label.startswith("output[")]
    finite = [abs(v) for v in outputs if math.isfinite(v)]
    assert _legend(svg)[-1][1] == (f"{max(finite):.2g}" if finite else "not finite")


def test_a_scale_with_nothing_on_it_says_so(tmp_path: Path) -> None:
    weights = tmp_path / "zeros.safetensors"
    save_file({"W1": np.zeros((3, 2), np.float32), "B1": np.zeros((1, 2), np.float32)}, weights)
    svg = drawn(f"weights={weights}", "activation=identity", "--values")
    labels = [text for _, text in _legend(svg)]
    assert labels[0] == "all 0"  # the one weight layer
    assert labels[-1] == "all 0"  # the outputs: 0 with zero weights and biases
    outputs = [
        e.get("style")
        for e in of_class(svg, "circle", "unit")
        if e.findtext(f"{SVG}title", "").startswith("output")
    ]
    assert outputs == ["fill:#f0f0f0"] * 2  # the scale's middle


def test_values_of_a_long_network_colour_the_columns_drawn() -> None:
    code, out, _ = invoke("draw", "layers=[" + ",".join(["4"] * 20) + "]", "--values")
    assert code == 0
    svg = ET.fromstring(out)
    assert len(of_class(svg, "circle", "unit")) == 7 * 4
    assert len(_numbers(svg, "line", "edge")) == 5 * 16


def test_more_units_than_a_picture_holds_are_refused_with_a_width_that_fits() -> None:
    sizes = "layers=[" + ",".join(["256"] * 12) + "]"
    code, out, err = invoke("draw", sizes, "--max-units", "64")
    assert (code, out) == (2, "")
    advised = re.search(r"use at most --max-units (\d+) for this network", err)
    assert advised is not None, err
    code, out, _ = invoke("draw", sizes, "--max-units", advised[1], "--values")
    assert code == 0
    assert len(out.encode()) < 2_000_000
    wider = str(int(advised[1]) + 1)
    assert invoke("draw", sizes, "--max-units", wider)[0] == 2
    assert invoke("draw", "layers=[3,40,1]", "--values", "--max-units", "40")[0] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "net.png"], "use one of .svg, .mmd"),
        (["-o", "net.svg", "-f", "mermaid"], "the suffix says svg"),
    ],
)
def test_bad_draw_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = invoke("draw", *args)
    assert code == 2
    assert message in err


@pytest.mark.parametrize(
    ("picture", "args", "alt"),
    [
        (PICTURE, ["configs/two_layer.yaml"], "The notebook network"),
        (
            ROOT / "docs" / "deep_relu_values.svg",
            ["configs/deep_relu.yaml", "--values"],
            "deep_relu",
        ),
    ],
)
def test_the_readme_pictures_are_what_draw_writes(
    overwrite_golden: bool, picture: Path, args: list[str], alt: str
) -> None:
    code, out, _ = invoke("draw", str(ROOT / args[0]), *args[1:])
    assert code == 0
    if overwrite_golden:
        picture.write_text(out)
    assert picture.read_text() == out
    assert f"![{alt}" in (ROOT / "README.md").read_text()
    assert f"(docs/{picture.name})" in (ROOT / "README.md").read_text()


def _ink_outside_the_canvas(svg: str) -> bool:
    """Whether resvg draws anything past the picture's own width: on a canvas 600 px wider
    (transparent past the picture's white background), any pixel there that is not clear."""
    from matplotlib.image import imread

    size = re.search(r'width="(\d+)" height="(\d+)"', svg)
    assert size is not None
    width, height = int(size[1]), int(size[2])
    wide = svg.replace(
        f'viewBox="0 0 {width} {height}" width="{width}"',
        f'viewBox="0 0 {width + 600} {height}" width="{width + 600}"',
    )
    pixels = imread(io.BytesIO(bytes(resvg_py.svg_to_bytes(svg_string=wide))), format="png")
    assert pixels.shape[:2] == (height, width + 600)
    return bool(pixels[:, width:, 3].any())


@pytest.mark.parametrize(
    "args",
    [
        ["name=mnist_mlp_baseline_relu_kaiming_seed0_v2", "layers=[784,128,10]"],
        ["name=x", "layers=[3,2,1]", "--values"],  # the legend's line is the widest text
        [str(ROOT / "configs" / "deep_relu.yaml"), "--values"],
        ["name=" + "w" * 120, "layers=[2,2]"],
    ],
)
def test_every_text_lies_inside_the_canvas(args: list[str]) -> None:
    code, out, _ = invoke("draw", *args)
    assert code == 0
    assert not _ink_outside_the_canvas(out)


def test_the_check_sees_ink_outside_the_canvas() -> None:
    """The control: a text placed past the width is seen."""
    out = invoke("draw", TWO_LAYER)[1]
    assert not _ink_outside_the_canvas(out)
    width = int(ET.fromstring(out).get("width") or 0)
    assert _ink_outside_the_canvas(
        out.replace("</svg>", f'<text x="{width - 10}" y="40">outside</text></svg>')
    )


def test_a_long_network_labels_only_the_layers_it_draws() -> None:
    """20 sizes: 7 columns drawn around a gap; the 5 pairs beside each other get their layer's
    label, and none stands over the gap, where no line is drawn."""
    svg = drawn("layers=[" + ",".join(["4"] * 20) + "]")
    labels = of_class(svg, "text", "layer")
    named = ["".join(label.itertext()).split(" ")[0] for label in labels]
    assert named == ["W1", "W2", "W3", "W18", "W19"]


def test_a_title_shows_every_size_when_every_column_is_drawn() -> None:
    svg = drawn("layers=[" + ",".join(map(str, range(1, 9))) + "]")  # 8 sizes: all drawn
    title = svg.find("{http://www.w3.org/2000/svg}title")
    assert title is not None
    assert title.text == "default: layers " + " → ".join(map(str, range(1, 9)))


@pytest.mark.parametrize(
    ("sizes", "direction"), [("[784,256,10]", "LR"), ("[8,8,8,8,8,8,8]", "TB")]
)
def test_a_mermaid_chain_of_more_than_a_few_nodes_runs_top_to_bottom(
    sizes: str, direction: str
) -> None:
    """Left to right, a 7-layer chart was 1813 px wide (text at 8 px in a page column)."""
    code, out, _ = invoke("draw", f"layers={sizes}", "-f", "mermaid")
    assert code == 0
    assert out.splitlines()[3] == f"flowchart {direction}"


def test_a_long_name_is_shortened_in_the_heading_and_kept_whole_in_the_title() -> None:
    """A 3-2-1 network named with 120 characters drew 1717 px wide, the network 470 px of it."""
    name = "a_very_long_network_name_" * 5
    svg, short = drawn(f"name={name}"), drawn("name=net")
    assert svg.get("width") == short.get("width")
    assert svg.findtext(f"{SVG}title") == f"{name}: layers 3 → 2 → 1"
    heading = next(t for t in svg.iter(f"{SVG}text") if t.get("class") == "title").text or ""
    assert "…" in heading
    assert heading.endswith(": layers 3 → 2 → 1")


def test_a_picture_taller_than_renderers_draw_is_refused_with_the_units_that_fit() -> None:
    code, _, err = invoke("draw", "layers=[5000,1]", "--max-units", "5000", "-o", "x.svg")
    assert code == 2
    assert "230,145 px tall" in err
    assert "use at most --max-units 691" in err
    svg = drawn("layers=[5000,1]", "--max-units", "691")
    assert int(svg.get("height") or 0) <= 32_767


README_COLUMN = 880  # px: the width a code-hosting page gives a README's pictures


def _fonts() -> dict[bool, object]:
    """DejaVu Sans, the font the pictures name first, regular and bold, from matplotlib's copy:
    text is measured with the font's own metrics, not with draw's estimate."""
    ft2font = pytest.importorskip("matplotlib.ft2font")
    fonts = Path(pytest.importorskip("matplotlib").get_data_path()) / "fonts" / "ttf"
    return {
        bold: ft2font.FT2Font(str(fonts / f"DejaVuSans{'-Bold' if bold else ''}.ttf"))
        for bold in (False, True)
    }


def _boxes(svg: ET.Element) -> list[tuple[str, float, float, float, float]]:
    """(what, left, top, right, bottom) of every text line and every unit of a picture, text
    measured in DejaVu Sans at the size its class (or style) gives."""
    style = svg.findtext(f"{SVG}style", "")
    sizes = {
        name: float(px) for name, px in re.findall(r"\.(\w+)\{[^}]*font-size:([\d.]+)px", style)
    }
    bold = set(re.findall(r"\.(\w+)\{[^}]*font-weight:bold", style))
    fonts = _fonts()
    boxes = []
    for text in svg.iter(f"{SVG}text"):
        inline = re.search(r"font-size:([\d.]+)px", text.get("style", ""))
        size = float(inline[1]) if inline else sizes[text.get("class", "")]
        lines = [(float(text.get("x", 0)), 0.0, text.text or "")] if text.text else []
        lines += [(float(s.get("x", 0)), float(s.get("dy", 0)), s.text or "") for s in text]
        y = float(text.get("y", 0))
        for x, dy, line in lines:
            y += dy
            font = fonts[text.get("class") in bold]
            font.set_size(size, 72)  # type: ignore[attr-defined]
            font.set_text(line)  # type: ignore[attr-defined]
            width = font.get_width_height()[0] / 64  # type: ignore[attr-defined]
            anchor = {"start": 0.0, "middle": 0.5, "end": 1.0}[text.get("text-anchor", "start")]
            left = x - anchor * width
            boxes.append((line, left, y - 0.76 * size, left + width, y + 0.24 * size))
    for unit in of_class(svg, "circle", "unit"):
        cx, cy, r = (float(unit.get(a, 0)) for a in ("cx", "cy", "r"))
        boxes.append(("unit", cx - r, cy - r, cx + r, cy + r))
    return boxes


def _overlapping(boxes: list[tuple[str, float, float, float, float]]) -> list[tuple[str, str]]:
    """The pairs of texts (or a text and a unit) whose boxes meet."""
    return [
        (a[0], b[0])
        for a, b in itertools.combinations(boxes, 2)
        if a[1] < b[3]
        and b[1] < a[3]
        and a[2] < b[4]
        and b[2] < a[4]
        and not (a[0] == b[0] == "unit")
    ]


def test_the_check_sees_text_over_text() -> None:
    """The control: the heading drawn twice, a few pixels apart, is seen."""
    out = invoke("draw", TWO_LAYER)[1]
    twice = out.replace('y="24">', 'y="24">two_layer</text><text class="title" x="50" y="30">', 1)
    assert _overlapping(_boxes(ET.fromstring(twice)))


LEGIBLE = [
    [TWO_LAYER, "--values"],
    [str(ROOT / "configs" / "deep_relu.yaml"), "--values"],
    [str(ROOT / "configs" / "large_bf16.yaml")],
    ["layers=[8,8,8,8,8,8,8]", "--values"],  # 7 columns: was 1200 px, text at 8 px in a column
    ["layers=[" + ",".join(["4"] * 101) + "]", "--values"],  # 100 layers: was 2050 px
    ["layers=[784,50000,50000,10]"],
    ["layers=[3,4096,1]", "--values"],
    ["layers=[512,512,512,512,4]", "dtype=float16", "activation=identity", "--values"],
    ["name=" + "a_very_long_network_name_" * 5, "layers=[3,2,1]", "--values"],
]


@pytest.mark.parametrize("args", LEGIBLE)
def test_a_picture_is_legible_in_a_readme_column(args: list[str]) -> None:
    """Placed in a page column 880 px wide (scaled down when wider), no text is under 9 px, no
    text lies over another or over a unit, and resvg draws it at that width."""
    svg = drawn(*args)
    width = int(svg.get("width") or 0)
    shown = min(1.0, README_COLUMN / width)
    boxes = _boxes(svg)
    style = svg.findtext(f"{SVG}style", "")
    smallest = min(
        float(px)
        for px in re.findall(
            r"font-size:([\d.]+)px",
            style + "".join(t.get("style", "") for t in svg.iter(f"{SVG}text")),
        )
    )
    assert smallest * shown >= 9, (width, smallest)
    assert width <= 1000
    assert not _overlapping(boxes)
    assert all(box[1] >= 0 and box[3] <= width for box in boxes), width
    png = bytes(
        resvg_py.svg_to_bytes(
            svg_string=ET.tostring(svg, encoding="unicode"), width=min(width, README_COLUMN)
        )
    )
    assert png_size_and_colours(png)[0] == min(width, README_COLUMN)

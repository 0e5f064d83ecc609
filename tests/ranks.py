"""Run under torchrun by tests/test_parallel.py: every case over one process group, started once.

Each rank joins the group, and for each case builds its share and runs the forward pass the way
`mlpcli run` and `mlpcli compare --nproc` do; rank 0 saves every tensor, put back together from
the ranks' pieces (`all_tensors`), the run's output, what its sink took of the run that does not
hold the output (each block's rows, and the rows put together), and what it took of a run that
brings every row to rank 0 in order, to OUT/CASE.npz, and what `compare` found to
OUT/CASE.json. Usage: ranks.py OUT CASES.json
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import overload

import numpy as np
import torch

from mlpcli.engine import comparisons, devices, parallel, runners
from mlpcli.engine.network import forward_in_chunks
from mlpcli.engine.world import Alone, World
from mlpcli.loading import loader
from mlpcli.model.closeness import tolerance_for
from mlpcli.model.config import Config, Parallel
from mlpcli.model.plan import Region
from mlpcli.model.shapes import tensor_shapes
from mlpcli.ranks import group


@overload
def all_tensors(config: Config, world: Alone) -> dict[str, np.ndarray]: ...
@overload
def all_tensors(config: Config, world: World) -> dict[str, np.ndarray] | None: ...
def all_tensors(config: Config, world: World) -> dict[str, np.ndarray] | None:
    """Every named tensor of a run over `world` as float64 arrays, in the notebook's order, on
    rank 0 (None on the others): what each rank holds and computes of the whole batch at once,
    put back together from its pieces."""
    config = dataclasses.replace(config, chunk=None)
    device = devices.prepare(world.on_device(config))
    pieces: list[tuple[str, Region, np.ndarray]] = []

    def observe(name: str, region: Region, tensor: torch.Tensor) -> None:
        pieces.append((name, region, runners.to_numpy(tensor, np.float64)))

    part = parallel.part_of(config, world, device)
    share = part.share
    if part.features is not None and share.features is not None:
        observe("features", (share.features, range(config.layers[0])), part.features)
    pieces.extend(comparisons._weight_pieces(part))
    if world.distributed and config.parallel in (Parallel.PIPELINE, Parallel.TENSOR):
        batches = [range(config.batch_size)]  # one micro-batch: the whole batch
        features = None if part.features is None else iter([part.features])
        for _ in parallel.outputs(part, world, batches, features, observe):
            pass
    else:  # `data` (each rank its rows), or one process
        rows = part.share.features
        assert rows is not None

        def seen(name: str, h: torch.Tensor, rows: range = rows) -> None:
            observe(name, (rows, range(h.shape[1])), h)

        forward_in_chunks(part.network, None, seen)
    gathered = world.gather(pieces)
    if gathered is None:
        return None
    shaped = {t.name: t.shape for t in tensor_shapes(config)}
    tensors: dict[str, np.ndarray] = {}
    for rank_pieces in gathered:
        for name, (rows, columns), values in rank_pieces:
            whole = tensors.setdefault(name, np.full(shaped[name], np.nan))
            whole[rows.start : rows.stop, columns.start : columns.stop] = values
    return {name: tensors[name] for name in shaped}


def main(out: Path, cases: dict[str, list[str]]) -> None:
    configs = {name: loader.load(None, overrides, {}) for name, overrides in cases.items()}
    joined = group.joined(list(configs.values()))
    for name, config in configs.items():
        tensors = all_tensors(config, joined)
        tolerance = tolerance_for(config.dtype, None, None)
        compared = comparisons.compare(config, tolerance, joined)
        result = runners.run(config, joined)
        sunk: list[np.ndarray] = []  # `data`: each rank's own rows; else all of them, on rank 0
        streamed = runners.run(config, joined, hold=False, sinks=[sunk.append])
        ordered: list[np.ndarray] = []  # every row, on rank 0
        sinks = [ordered.append] if joined.rank == 0 else []
        runners.run(config, joined, hold=False, sinks=sinks, in_order=True)
        if tensors is not None and result is not None and streamed is not None:
            assert result.parallel is not None
            assert streamed.output is None
            preview = {"preview_head": streamed.preview.head, "preview_tail": streamed.preview.tail}
            blocks = {"sunk": np.concatenate(sunk), "sunk_rows": [len(rows) for rows in sunk]}
            blocks["in_order"] = np.concatenate(ordered)
            arrays = {**tensors, "run_output": result.whole, **preview, **blocks}
            np.savez(out / f"{name}.npz", **arrays)  # type: ignore[arg-type]
            assert compared is not None
            found = {d.name: (d.shape, d.difference.max_abs) for d in compared.diffs}
            info = {"mode": result.parallel.mode, "world_size": result.parallel.world_size}
            info["within"] = compared.within
            (out / f"{name}.json").write_text(json.dumps({**info, "compared": found}))
    joined.finish()


if __name__ == "__main__":
    main(Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text()))

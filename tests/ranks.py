"""Run under torchrun by tests/test_parallel.py: every case over one process group, started once.

Each rank joins the group, and for each case builds its share and runs the forward pass the way
`mlpcli run` and `mlpcli compare --nproc` do; rank 0 saves every tensor, put back together from
the ranks' pieces, the run's output, what its sink took of the run that does not hold the
output (each block's rows, and the rows put together), and what it took of a run that brings
every row to rank 0 in order, to OUT/CASE.npz. Usage: ranks.py OUT CASES.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from mlpcli.engine import comparisons, runners
from mlpcli.loading import loader
from mlpcli.ranks import group


def main(out: Path, cases: dict[str, list[str]]) -> None:
    configs = {name: loader.load(None, overrides, {}) for name, overrides in cases.items()}
    joined = group.joined(list(configs.values()))
    for name, config in configs.items():
        tensors = comparisons.all_tensors(config, joined)
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
            parallel_info = {"mode": result.parallel.mode, "world_size": result.parallel.world_size}
            (out / f"{name}.json").write_text(json.dumps(parallel_info))
    joined.finish()


if __name__ == "__main__":
    main(Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text()))

"""`mlpcli run`: build and run networks; check them against expected outputs.

Through the commands' driver (`driver.drive`): plan (configs and sweeps), pre-flight (outputs,
expectations, ranks, memory: before torch is imported), run (here, or over ranks), emit, check
(`--expect`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlpcli.commands import world as worlds
from mlpcli.commands.common import (
    Arguments,
    AtolOption,
    FormatOption,
    Job,
    JunitOption,
    MultirunOption,
    NprocOption,
    QuietOption,
    Report,
    RtolOption,
    field_option,
    plan,
    sources,
)
from mlpcli.commands.driver import Command, World, drive
from mlpcli.engine import host
from mlpcli.errors import CheckFailedError, ReaderGone, UsageError, say
from mlpcli.model import memory
from mlpcli.model.config import Config, Parallel
from mlpcli.model.results import RunResult
from mlpcli.model.shapes import step_flops
from mlpcli.model.units import byte_size, count_text, duration_text
from mlpcli.ranks import process
from mlpcli.report import problems, shares, streams, terminal
from mlpcli.report.output import Format, Output, refuse_several
from mlpcli.report.progress import LateProgress
from mlpcli.report.streams import Printed, Writer

if TYPE_CHECKING:
    from mlpcli.data.expect import Comparison, Expectation, Mismatch
    from mlpcli.engine.runners import OutputSink
    from mlpcli.model.results import Estimate
    from mlpcli.ranks.group import Group

LONG_RUN_S = 10.0  # a run estimated to take longer gets a note first


class _Rows(enum.Enum):
    """Where the output rows of a run over several ranks go."""

    GATHERED = "gathered"  # whole to rank 0 after the run, then shown and written there
    WITH_RANKS = "with the ranks"  # each rank writes its own into the file (one `data` network)
    THROUGH_RANK_0 = "through rank 0"  # in row order, a block at a time, as they come (one
    # pipeline or tensor network; or `data` for CSV on stdout, or a file the ranks cannot write)


def run(
    arguments: Arguments = None,
    output_format: FormatOption = Format.TABLE,
    full: Annotated[bool, typer.Option("--full", help="Show every output value.")] = False,
    stats: Annotated[
        bool,
        typer.Option(
            "--stats",
            help="Statistics of features, h1.. and output over the whole batch (mean, std, min, "
            "max, zeros, saturated, NaN, infinities, a histogram); a note where activations "
            "vanish, explode or saturate.",
        ),
    ] = False,
    expect: Annotated[
        str | None,
        typer.Option(
            "--expect",
            metavar="VALUES|FILE",
            help="Expected output: YAML values (0.3171, [[0.1, 0.2]]), a .json/.csv file "
            "written by run, or an .npy output array (.csv and .npy are compared as the rows are "
            "computed); exit 1 when an output differs.",
            show_default=False,
        ),
    ] = None,
    atol: AtolOption = None,
    rtol: RtolOption = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Also write the results to this file, in the format its suffix names: .json, "
            ".csv, .npy (the output array of one network), .jsonl or .parquet (one network's "
            "output rows) or .safetensors (every tensor of one network, in its dtype, with the "
            "config). .npy, .csv, .jsonl and .parquet are written as the rows are computed.",
            show_default=False,
        ),
    ] = None,
    field: Annotated[
        list[str] | None, field_option("output.0.0, tensors.1.shape, config.seed")
    ] = None,
    quiet: QuietOption = False,
    multirun: MultirunOption = False,
    nproc: NprocOption = None,
    junit_xml: JunitOption = None,
) -> None:
    """Build each network from its seed and run the forward pass; show tensors and outputs."""
    out = Output(output_format, output, field, quiet, full)
    options = _Options(stats=stats, multirun=multirun, expect=expect, atol=atol, rtol=rtol)
    drive(_Run(arguments, nproc, junit_xml, out, options))


@dataclass(frozen=True)
class _Options:
    """What `run` was asked for beyond its configs and outputs."""

    stats: bool
    multirun: bool
    expect: str | None  # --expect, and its tolerance
    atol: float | None
    rtol: float | None


class _Run(Command[RunResult]):
    """`run` for the driver: its outputs, what it holds, how it runs here and over ranks."""

    name, several, shared = "run", True, True

    def __init__(
        self,
        arguments: Sequence[str] | None,
        nproc: int | None,
        junit: Path | None,
        out: Output,
        options: _Options,
    ) -> None:
        super().__init__(arguments, nproc, junit)
        self.out, self.o = out, options
        self.keep = out.path is not None and out.path.suffix.lower() == ".safetensors"
        self.held: str | None = None  # why the output is held whole (`_holds`), from preflight
        self.rows = _Rows.GATHERED  # over several ranks (`_rows_over_ranks`)
        self.expected: Expectation | None = None
        self.printed = False  # CSV printed as it was computed
        self.gone = False  # and its reader went away
        self.streamed_expect = False  # --expect compared as the rows are computed
        self.compared: list[Mismatch | None] | None = None  # what that found, by network

    def pipes(self, world: World) -> bool:
        """Standard input streams into one network run here whose output nothing holds whole
        (a sweep, several configs, ranks, what `_holds` names, and an `.npy` onto other than
        a regular file read it from a copy)."""
        one = not self.o.multirun and len(self.paths) <= 1
        here = world.size == 1 and not world.over_ranks
        whole = self.o.expect is not None and not _compared_as_it_runs(self.o.expect)
        counted = self.out.path is None or streams.counted_at_the_end(self.out.path)
        return one and here and counted and _holds(self.out, expect=whole) is None

    def plan(
        self, paths: Sequence[Path | None], overrides: Sequence[str], world: World
    ) -> list[Job]:
        return plan(paths, overrides, multirun=self.o.multirun)

    def preflight(self, jobs: Sequence[Job], world: World, report: Report) -> None:
        expect, output = self.o.expect, self.out.path
        inputs = [
            *sources(None, *(c for c, _ in jobs)),
            *self.paths,
            Path(expect) if expect else None,
        ]
        self.out.check(RunResult, inputs)
        report.check(inputs)
        for suffix in (*streams.ONE_OUTPUT, ".safetensors"):
            refuse_several(self.out, suffix, len(jobs))
        if output is not None:
            streams.check(output)
        self.expected = _expectation(expect, jobs)
        streamed = expect is not None and _compared_as_it_runs(expect)  # .npy, .csv
        if world.over_ranks:  # unless gathered, the ranks that take the rows compare them
            held = _holds(self.out, expect=False)  # held for something else: gathered
            rows = _rows_over_ranks(self.out, jobs, held, world.size)
            streamed &= rows is not _Rows.GATHERED
        self.streamed_expect = streamed  # each network compared as its rows come
        checked_whole = self.expected is not None and not streamed
        self.held = _holds(self.out, expect=checked_whole)

    def check_ranks(self, jobs: Sequence[Job], world: World) -> None:
        configs = [config for config, _ in jobs]
        worlds.check(configs, world.size, self.name, stats=self.o.stats, keep=self.keep)
        self.rows = _rows_over_ranks(self.out, jobs, self.held, world.size)

    def fits(self, jobs: Sequence[Job], world: World) -> None:
        _check_memory(jobs, world.size, self.held, self.rows)

    def notes(self, jobs: Sequence[Job]) -> None:
        if self.o.stats and self.out.format is Format.CSV and not process.prechecked():
            terminal.note("CSV holds the outputs; --stats figures are in the table and in JSON")
        super().notes(jobs)

    def here(self, jobs: Sequence[Job]) -> list[RunResult]:
        self.printed = _prints_as_it_runs(self.out)
        comparisons = self._comparisons(jobs)
        results, self.gone = _run_here(
            jobs, self.out, self.printed, comparisons,
            stats=self.o.stats, keep=self.keep, held=self.held is not None,
        )  # fmt: skip
        if comparisons is not None:
            self.compared = [comparison.mismatch() for comparison in comparisons]
        return results

    def in_group(self, jobs: Sequence[Job], group: Group) -> list[RunResult] | None:
        comparisons = self._comparisons(jobs)  # where they are taken, as they come
        through = self.rows is _Rows.THROUGH_RANK_0 and group.rank == 0
        self.printed = through and _prints_as_it_runs(self.out)
        with (
            _printing(self.printed, jobs, finish=True) as printer,  # the ranks run on
            _streaming(self.out, jobs) if through else contextlib.nullcontext() as writer,
        ):
            writers = [w for w in (writer, printer) if w is not None]
            results = _run_over_ranks(
                jobs, group, self.o.stats, self.keep, self.out, self.rows, comparisons, writers
            )
        self.gone = printer is not None and printer.gone
        if results is not None:
            _written(jobs, self.out, results, self.rows)
            if comparisons is not None:
                self.compared = [comparison.mismatch() for comparison in comparisons]
        return results

    def _comparisons(self, jobs: Sequence[Job]) -> list[Comparison] | None:
        """Each network's comparison with `--expect` as its rows come; None where the whole
        output is compared after the run."""
        if not self.streamed_expect:
            return None
        assert self.expected is not None
        return _comparisons(self.expected, jobs, self.o.atol, self.o.rtol)

    def emit(self, results: Sequence[RunResult]) -> None:
        if self.o.multirun:  # a sweep's runs show in one table
            results = [dataclasses.replace(result, sweep=True) for result in results]
        self.out.emit(results, printed=self.printed)
        if self.gone:  # stdout's reader went while CSV was printed; every file is in place
            raise ReaderGone

    def check(self, results: Sequence[RunResult], report: Report) -> None:
        _checked(results, self.expected, (self.o.atol, self.o.rtol), report, self.compared)


def _check_memory(jobs: Sequence[Job], world: int, held: str | None, rows: _Rows) -> None:
    """Before torch is imported, what cannot fit fails at once: the host's part of each run,
    and an output held whole (for what `held` names, or by rank 0 over ranks where the `rows`
    are gathered) past the budget."""
    for config, _ in jobs:
        gathered = world > 1 and rows is _Rows.GATHERED  # the output goes whole to rank 0
        whole = held or ("--nproc" if gathered else None)
        if world == 1 or config.parallel is Parallel.NONE:  # shared: `shapes --nproc` plans
            on_cpu = config.device.type == "cpu"
            host.check_host(config, on_cpu=on_cpu, streamed=True, held=whole is not None)
        if whole is not None:
            _refuse_holding(config, whole)


def _run_here(
    jobs: Sequence[Job], out: Output, printing: bool,
    comparisons: Sequence[Comparison] | None, *, stats: bool, keep: bool, held: bool,
) -> tuple[list[RunResult], bool]:  # fmt: skip
    """Every job in this process, its output to the file and (`printing`) stdout as it is
    computed where they stream, and to its `comparisons` (--expect, one a job); the results,
    and whether stdout's reader has gone."""
    finish = out.path is not None
    with _printing(printing, jobs, finish) as printer, _streaming(out, jobs) as writer:
        writers = [w for w in (writer, printer) if w is not None]
        results = []
        for index, (config, combo) in enumerate(jobs):
            checks = [] if comparisons is None else [comparisons[index].add]
            result = _run_one(config, combo, stats, keep, held, writers, checks)
            results.append(dataclasses.replace(result, overrides=combo))
        out.check_fields(results)
    return results, printer is not None and printer.gone


def _rows_over_ranks(out: Output, jobs: Sequence[Job], held: str | None, world: int) -> _Rows:
    """Where the output rows of a run over `world` ranks go. One network that nothing holds
    whole: a `data` network's stay with the ranks (each writes its own to the output file,
    rank 0 shows a preview) where the file is one the ranks can write and CSV is not printed;
    otherwise, and for a `pipeline` or `tensor` network, they come through rank 0 in row
    order, which writes and prints them as they come. Anything else is gathered."""
    parallel = jobs[0][0].parallel if len(jobs) == 1 and world > 1 and held is None else None
    writable = out.path is None or shares.written_by_ranks(out.path)
    if parallel is Parallel.DATA and not _prints_csv(out) and writable:
        return _Rows.WITH_RANKS
    if parallel in (Parallel.DATA, Parallel.PIPELINE, Parallel.TENSOR):
        return _Rows.THROUGH_RANK_0
    return _Rows.GATHERED


def _written(
    jobs: Sequence[Job],
    out: Output,
    results: Sequence[RunResult],
    rows: _Rows,
) -> None:
    """Rank 0's results of a run over ranks, to the output file where they were gathered."""
    gathered = rows is _Rows.GATHERED
    writing = _streaming(out, jobs) if gathered else contextlib.nullcontext()
    with writing as writer:
        for result in results:
            if writer is not None:
                writer.start(result.config, result.overrides)
                writer.add(result.whole)
        out.check_fields(results)


def _checked(
    results: Sequence[RunResult],
    expected: Expectation | None,
    tolerance: tuple[float | None, float | None],
    report: Report,
    compared: Sequence[Mismatch | None] | None = None,
) -> None:
    """The notes on each result, and `--expect`: a case of the JUnit report per network, a
    GitHub annotation per failure, and CheckFailedError if any output differs beyond the
    tolerance given (atol, rtol; None: the dtype's). `compared`: what comparing each network
    as it ran found (an .npy or .csv expectation), instead of comparing its held output."""
    for result in results:
        if result.trouble:
            terminal.note(f"{result.config.name}: {result.trouble}")
        if result.nonfinite:
            terminal.note(
                f"{result.config.name}: output has {result.nonfinite} NaN or infinite values"
            )
    if compared is not None:
        failures = {i: failure for i, failure in enumerate(compared) if failure is not None}
    else:
        failures = _check(results, expected, *tolerance) if expected is not None else {}
    for i, result in enumerate(results):
        name = " ".join([result.config.name, *result.overrides])
        failed = failures.get(i)
        message = None if failed is None else failed.message
        report.add("mlpcli run", name, result.forward_ms / 1000, message)
    if failures:
        if problems.in_github_actions():  # each on its line of the golden file
            for failed in failures.values():
                title = "mlpcli run --expect"
                say(problems.workflow_error(failed.message, title, failed.file, failed.line))
        raise CheckFailedError([failed.message for failed in failures.values()])
    if expected is not None:
        terminal.note(f"every output matches {expected.source}")


def _holds(out: Output, *, expect: bool) -> str | None:
    """Why a run must hold its whole output, or None: for what it prints (JSON, every value,
    fields), a .json or .safetensors file, or `--expect`; a table shows a preview, and CSV is
    printed as it is computed."""
    suffix = "" if out.path is None else out.path.suffix.lower()
    reasons = {
        "--format json": not out.quiet and out.format is Format.JSON,
        "--full": not out.quiet and out.full,
        "--field": bool(out.fields),
        f"--output {suffix}": suffix in (".json", ".safetensors"),
        "--expect": expect,
    }
    return next((reason for reason, holds in reasons.items() if holds), None)


def _refuse_holding(config: Config, why: str) -> None:
    """UsageError, before any work, for an output too large to hold that a run would hold
    (for a .safetensors file: every tensor)."""
    every = why == "--output .safetensors"
    size = memory.kept_bytes(config) if every else memory.output_bytes(config)
    if size > memory.HELD_BYTES:
        what = "tensors, {}, are" if every else "output, {}, is"
        instead = (
            "compare it with --expect FILE.npy or FILE.csv (run -o gold.npy), which are read as "
            "it runs"
            if why == "--expect"
            else "write the output with --output FILE.npy, "
            ".csv, .jsonl or .parquet, which grow as it runs"
        )
        raise UsageError(
            f"{config.name}: its {what.format(byte_size(size))} more than the "
            f"{byte_size(memory.HELD_BYTES)} a run holds whole for {why}; {instead}"
        )


def _streaming(
    out: Output, jobs: Sequence[Job]
) -> contextlib.AbstractContextManager[Writer | None]:
    """The writer of an output file that grows as the runs go, put in place when all have run;
    None for another format (written whole after the runs) or no file."""
    path = out.path
    if path is None or path.suffix.lower() not in streams.SUFFIXES:
        return contextlib.nullcontext()
    return streams.streamed(path, [combo for _, combo in jobs])


def _prints_as_it_runs(out: Output) -> bool:
    """Whether the runs print their CSV as they compute it (this process speaks)."""
    return _prints_csv(out) and process.speaks()


def _prints_csv(out: Output) -> bool:
    """Whether the results are CSV on stdout (`--format csv`, no `--field`, not quiet)."""
    return out.format is Format.CSV and not out.quiet and not out.fields


def _printing(
    printing: bool, jobs: Sequence[Job], finish: bool
) -> contextlib.AbstractContextManager[Printed | None]:
    """The writer of CSV onto stdout as the runs go; None when the results print after. With
    `finish`, the runs go on once stdout's reader has gone (`streams.printed`)."""
    if not printing:
        return contextlib.nullcontext()
    return streams.printed([combo for _, combo in jobs], finish=finish)


def _run_one(
    config: Config,
    combo: Sequence[str],
    stats: bool,
    keep: bool,
    hold: bool,
    writers: Sequence[Writer],
    checks: Sequence[OutputSink],
) -> RunResult:
    """Run one network, its output to `writers` and `checks` as it goes; a long one gets a
    note with its estimate first, and a progress bar that moves by each layer's FLOPs and
    counts down from that estimate."""
    from mlpcli.engine import runners  # torch: only once the input is valid

    for writer in writers:
        writer.start(config, combo)

    steps = None if config.batch is None else step_flops(config)  # rows counted as read: open
    with LateProgress(f"running {config.name}", steps) as bar:

        def heard(estimate: Estimate) -> None:
            bar.expect(estimate.seconds)
            if estimate.seconds >= LONG_RUN_S:
                terminal.note(
                    f"{config.name}: about {duration_text(estimate.seconds)} on {estimate.device} "
                    f"({count_text(estimate.flops)}FLOP at {count_text(int(estimate.rate))}FLOP/s, "
                    "measured here); Ctrl-C stops it"
                )

        return runners.run(
            config,
            step=bar.advance,
            on_estimate=heard,
            with_stats=stats,
            keep=keep,
            hold=hold,
            sinks=[*(writer.add for writer in writers), *checks],
        )


def _run_over_ranks(
    jobs: Sequence[Job], group: Group, stats: bool, keep: bool, out: Output, rows: _Rows,
    comparisons: Sequence[Comparison] | None, writers: Sequence[Writer],
) -> list[RunResult] | None:  # fmt: skip
    """Every job over this process group: a `parallel: none` network on one rank (they take
    turns), the others on every rank; the results in sweep order on rank 0, None elsewhere.
    Unless its `rows` are gathered, the one network's output rows are compared with its
    `comparisons` (`--expect`) as they come, and written into the output file by the ranks
    or (`writers`, rank 0's) as they come through rank 0."""
    from mlpcli.engine import runners

    mine: dict[int, RunResult] = {}
    turn = 0
    for index, (config, combo) in enumerate(jobs):
        shared = group.distributed and config.parallel is not Parallel.NONE
        if not shared:  # on one rank, the ranks taking turns
            turn, ours = turn + 1, turn % group.world_size == group.rank
            if ours:
                result = runners.run(group.on_device(config), with_stats=stats, keep=keep)
                mine[index] = dataclasses.replace(result, overrides=combo)
        else:
            comparison = None if comparisons is None else comparisons[index]
            shared_result = _shared(config, combo, group, out, rows, stats, comparison, writers)
            if shared_result is not None:
                mine[index] = dataclasses.replace(shared_result, overrides=combo)
    gathered = group.gather(mine)
    group.complete()  # every rank has done its part: only now is the result reported
    if gathered is None:
        return None
    merged = {index: result for results in gathered for index, result in results.items()}
    return [merged[index] for index in range(len(jobs))]


def _shared(
    config: Config,
    combo: Sequence[str],
    group: Group,
    out: Output,
    rows: _Rows,
    stats: bool,
    comparison: Comparison | None,
    writers: Sequence[Writer],
) -> RunResult | None:
    """One network run by every rank: its result on rank 0 (with `stats`, its statistics);
    its output rows gathered there whole, or through rank 0 to its `writers` and
    `comparison`, or with the ranks, each writing its rows into the output file and comparing
    them (`comparison`, the ranks' worst on rank 0)."""
    from mlpcli.engine import parallel, runners

    if rows is _Rows.GATHERED:  # compared whole on rank 0 (preflight made no comparison)
        assert comparison is None
        return runners.run(config, group, with_stats=stats)
    if rows is _Rows.THROUGH_RANK_0:  # every row to rank 0's sinks, the others' none
        sinks: list[OutputSink] = [writer.add for writer in writers]
        for writer in writers:
            writer.start(config, combo)
        if comparison is not None and group.rank == 0:
            sinks.append(comparison.add)
        return runners.run(config, group, sinks=sinks, hold=False, with_stats=stats, in_order=True)
    own = parallel.own_rows(config, group)
    checks = []
    if comparison is not None:
        comparison.row = own.start
        checks.append(comparison.add)
    with _rows_written(out, config, combo, own, group) as files:
        sinks = [*files, *checks]
        result = runners.run(config, group, sinks=sinks, hold=False, with_stats=stats)
    if comparison is not None:
        comparison.merge(group.gather(comparison.worst) or [])
    return result


@contextlib.contextmanager
def _rows_written(
    out: Output, config: Config, combo: Sequence[str], rows: range, group: Group
) -> Iterator[list[OutputSink]]:
    """This rank's sink into the output file (`shares.written`), or none without a file."""
    if out.path is None:
        yield []
        return
    with shares.written(out.path, config, combo, rows, group) as writer:
        yield [writer.add]


def _expectation(expect: str | None, jobs: Sequence[Job]) -> Expectation | None:
    """The expected outputs, read and matched to every network before anything runs."""
    if expect is None:
        return None
    from mlpcli.data import expect as expectations  # NumPy

    expected = expectations.parse(expect)
    for config, combo in jobs:
        expected.output(config.name, combo)
    return expected


def _compared_as_it_runs(expect: str) -> bool:
    """Whether `--expect` is compared with the output a block of rows at a time."""
    from mlpcli.data import expect as expectations  # NumPy

    return expectations.streams(expect)


def _comparisons(
    expected: Expectation, jobs: Sequence[Job], atol: float | None, rtol: float | None
) -> list[Comparison]:
    """Each job's comparison of its output with `expected`, a block of rows at a time."""
    from mlpcli.data import expect as expectations
    from mlpcli.model.closeness import tolerance_for

    return [
        expectations.Comparison(
            expected,
            (config.name, combo, (config.batch, config.layers[-1])),
            tolerance_for(config.dtype, atol, rtol),
        )
        for config, combo in jobs
    ]


def _check(
    results: Sequence[RunResult], expected: Expectation, atol: float | None, rtol: float | None
) -> dict[int, Mismatch]:
    """What is wrong with each network (by its index) whose output differs beyond tolerance."""
    from mlpcli.data import expect as expectations
    from mlpcli.model.closeness import tolerance_for

    failures = {}
    for i, result in enumerate(results):
        tolerance = tolerance_for(result.config.dtype, atol, rtol)
        if failure := expectations.check(result, expected, tolerance):
            failures[i] = failure
    return failures

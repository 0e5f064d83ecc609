"""The process group of a run over several ranks, with torch: joining it, the collectives the
parallel modes use (timed), and ending every rank together: one voice, one exit code, and a rank
that stops answering named within the timeout. docs/distributed.md is the guide.

Each rank keeps a heartbeat (a counter) in the launcher's store; rank 0 watches every other
rank's, and the others watch rank 0's, each timing changes on its own clock. A rank whose
heartbeat stands still for `timeout` seconds has stopped: the watcher says so and every rank
ends. A rank that fails says why and posts its exit code there; every other rank ends with that
code, silently. Collectives themselves wait as long as the slowest rank computes.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar, cast

import torch
import torch.distributed as dist

from mlpcli import interrupts
from mlpcli.errors import ExitCode, UnavailableError, error_line, first_line
from mlpcli.model.config import Config, Device
from mlpcli.ranks import process
from mlpcli.ranks.process import Rank
from mlpcli.ranks.store import agent_store, client, key

if TYPE_CHECKING:
    from torch._C._distributed_c10d import Store

JOIN_SLACK_S = 3.0  # past a hand-started rank's timeout, the most its group may take to form
BEAT_S = 1.0  # a heartbeat a second (five within the timeout, for short ones)
POLL_S = 0.2  # how often a rank looks for a failure posted by another
STOPPED_S = 3 * BEAT_S  # after a broken connection: the rank whose heartbeat stood still this long
ACK_WAIT_S = 5.0  # how long the failing rank waits for the others to see its failure
# The heartbeats say whether a rank is alive; a collective may wait as long as the slowest rank
# computes (a sweep's share, the reference of `compare`), so torch's own limit is a day.
COLLECTIVE_TIMEOUT = timedelta(days=1)

T = TypeVar("T")
_joined: Group | None = None


class Group:
    """This process's rank in its group (world size 1 without a launcher), and its collectives."""

    def __init__(self, rank: Rank, timeout_s: int) -> None:
        self.rank, self.world_size, self.local_rank = rank.rank, rank.world_size, rank.local_rank
        self.timeout_s = timeout_s
        self.beat_s = min(BEAT_S, timeout_s / 5)
        self.comm_s = 0.0  # seconds spent waiting on other ranks, since the last reset
        self._sends: list[tuple[dist.Work, torch.Tensor]] = []
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._reporting = threading.Lock()  # held by the one thread of this rank that reports
        self.completed = False  # every rank has done its part: the result stands
        self._silent: set[int] = set()  # ranks found stopped: they will not see a failure
        # the launcher's store is there from the start under torchrun (its agent's) and --nproc;
        # with a hand-set MASTER_ADDR rank 0 makes it as the group forms
        self.has_store = agent_store()

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def on_device(self, config: Config) -> Config:
        """`config` on this rank's device: a CUDA device is the rank's local GPU."""
        if config.device.type == "cpu" or not self.distributed or not torch.cuda.is_available():
            return config  # `auto` without CUDA is the CPU; `cuda` without it, an error
        source = f"{config.where('device')} (rank {self.rank}: LOCAL_RANK)"
        return config.on_device(Device("cuda", self.local_rank), source)

    def backend(self, device: torch.device) -> str | None:
        """The backend that moves `device`'s tensors: None for a group of one."""
        if not self.distributed:
            return None
        return "nccl" if device.type == "cuda" else "gloo"

    @contextlib.contextmanager
    def _checked(self) -> Iterator[None]:
        """A failed collective: another rank died or stopped (named), or lost its connection."""
        try:
            yield
        except RuntimeError as error:
            raise self.lost(error) from None

    @contextlib.contextmanager
    def _waiting(self, device: torch.device) -> Iterator[None]:
        """A wait on other ranks, its time counted (a GPU's queued work first, and its own)."""
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        with self._checked():
            yield
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        self.comm_s += time.perf_counter() - start

    def send(self, tensor: torch.Tensor, to: int) -> None:
        """Start sending `tensor` to rank `to`, without waiting; `flush` waits for every send."""
        tensor = tensor.contiguous()
        with self._checked():
            work = dist.isend(tensor, to)
        assert work is not None
        self._sends.append((work, tensor))

    def recv(self, out: torch.Tensor, source: int) -> torch.Tensor:
        """`out` (contiguous), filled from rank `source`."""
        with self._waiting(out.device):
            dist.recv(out, source)
        return out

    def flush(self) -> None:
        """Wait until every tensor this rank sent has gone."""
        for work, tensor in self._sends:
            with self._waiting(tensor.device):
                work.wait()
        self._sends.clear()

    def all_reduce(self, tensor: torch.Tensor) -> None:
        """Sum `tensor` over the ranks, in place."""
        if self.distributed:
            with self._waiting(tensor.device):
                dist.all_reduce(tensor)

    def all_gather_columns(self, shard: torch.Tensor, columns: Sequence[range]) -> torch.Tensor:
        """Every rank's columns side by side: rank r's shard holds `columns[r]` (uneven ones
        padded to the widest on the way)."""
        if not self.distributed:
            return shard
        widest = max(map(len, columns))
        padded = shard.new_zeros((shard.shape[0], widest))
        padded[:, : shard.shape[1]] = shard
        parts = [torch.empty_like(padded) for _ in columns]
        with self._waiting(shard.device):
            dist.all_gather(parts, padded)
        return torch.cat([part[:, : len(c)] for part, c in zip(parts, columns, strict=True)], 1)

    def barrier(self) -> None:
        if self.distributed:
            with self._waiting(torch.device("cpu")):
                dist.barrier()

    def gather(self, value: T) -> list[T] | None:
        """Every rank's `value` on rank 0 (in rank order), None on the others."""
        if not self.distributed:
            return [value]
        gathered: list[object] | None = [None] * self.world_size if self.rank == 0 else None
        with self._waiting(torch.device("cpu")):
            dist.gather_object(value, gathered, dst=0)
        return cast("list[T] | None", gathered)

    def shared(self, value: T) -> T:
        """Rank 0's `value`, on every rank."""
        if not self.distributed:
            return value
        sent: list[T] = [value]
        with self._waiting(torch.device("cpu")):
            dist.broadcast_object_list(sent, src=0)
        return sent[0]

    def complete(self) -> None:
        """Every rank has done its part (a barrier, watched, once rank 0 holds all it reports):
        from here rank 0 reports the result; before it, a failure anywhere ends every rank with
        no result. The watcher stops: nothing another rank posts ends this one (a rank's death
        from here ends the run through the launcher, which names what was written in full)."""
        self.barrier()
        self.completed = True
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()

    def end_with(self, lines: Sequence[str], code: int, write: Callable[[str], None]) -> int:
        """The first rank to fail says why and posts `code`; every rank ends with that code.
        Ends this process (a live group cannot be torn down once another rank is gone). After
        `complete`, a failure is this rank's own (rank 0's report): said, and no one else told."""
        if not self._reporting.acquire(blocking=False):  # the watcher reports; it ends us
            threading.Event().wait()
        if self.completed or not self.has_store:  # no one else to tell, or nowhere to post it
            for line in lines:
                write(line)
            process.end_now(code)
        with interrupts.held():  # the launcher's SIGTERM, once the others end, changes nothing
            payload = f"{code} {self.rank}"
            try:
                store = client(self.timeout_s)
                first = store.compare_set(key("ended"), "", payload).decode()
            except RuntimeError:  # the store is gone: say it here
                store, first = None, payload
            if first != payload:  # another rank failed first and said why
                with contextlib.suppress(RuntimeError):
                    if store is not None:
                        store.add(key("acks"), 1)
                process.end_now(int(first.split()[0]))
            for line in lines:
                write(line)
            deadline = time.monotonic() + ACK_WAIT_S
            with contextlib.suppress(RuntimeError):
                while (
                    store is not None
                    and store.add(key("acks"), 0) < self.world_size - 1 - len(self._silent)
                    and time.monotonic() < deadline
                ):
                    time.sleep(POLL_S / 4)
            process.end_now(code)

    def finish(self) -> int:
        """Success once every rank has succeeded; the watcher stops between two barriers, so
        that no rank's watcher sees the store go as the first ranks exit (the second barrier,
        unwatched, names a rank that does not reach it within the timeout). After `complete`
        no rank waits for another: the command has succeeded."""
        if self.completed:
            self._tell_the_launcher()
            self._end_group()
            return int(ExitCode.OK)
        self.barrier()
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()
        if self.distributed:
            try:
                limit = timedelta(seconds=self.timeout_s)
                dist.monitored_barrier(timeout=limit, wait_all_ranks=True)
            except RuntimeError as error:
                message = f"a rank did not finish with the others: {first_line(error)}"
                raise UnavailableError(message) from None
        self._end_group()
        return int(ExitCode.OK)

    def _tell_the_launcher(self) -> None:
        """Rank 0's command has succeeded: `--nproc`'s launcher ends with 0 from here, whatever
        becomes of the ranks."""
        process.tell_the_launcher(process.FINISHED)

    def _end_group(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()
        process.speak_through(None)

    def lost(self, error: Exception) -> UnavailableError:
        """What a failed collective means: the ranks whose heartbeat stood still, by name."""
        first = first_line(error)
        if not self.has_store:  # the group never formed (a hand-started rank alone)
            return UnavailableError(
                f"the {self.world_size} ranks did not all arrive within the timeout "
                f"({self.timeout_s} s): {first}"
            )
        try:
            store = client(self.timeout_s)
            before = {r: _beat(store, r) for r in range(self.world_size) if r != self.rank}
            time.sleep(STOPPED_S)
            stopped = [r for r, beat in before.items() if _beat(store, r) == beat]
        except RuntimeError:
            stopped = []
        if stopped:
            self._silent.update(stopped)  # no acknowledgement to wait for from them
            named = ", ".join(f"rank {rank}" for rank in stopped)
            return UnavailableError(f"{named} stopped answering ({first}); every rank ends")
        return UnavailableError(f"rank {self.rank} lost contact with the other ranks: {first}")

    def watch(self) -> None:
        """Keep a heartbeat, watch the others', and end with the code another rank posts."""
        self._watcher = threading.Thread(target=self._watch, name="mlpcli-group", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        watched = range(1, self.world_size) if self.rank == 0 else range(1)
        seen: dict[int, tuple[str, float]] = {}  # rank: its last heartbeat, and when it changed
        try:
            store = client(self.timeout_s, fresh=True)
            beat, next_beat = 0, 0.0
            while not self._stop.is_set():
                if store.check([key("ended")]) and not self.completed:
                    code, failed = store.get(key("ended")).decode().split()
                    if int(failed) != self.rank:
                        store.add(key("acks"), 1)
                        process.end_now(int(code))
                now = time.monotonic()
                if now >= next_beat:
                    beat, next_beat = beat + 1, now + self.beat_s
                    store.set(key(f"alive/{self.rank}"), str(beat))
                    for rank in watched:
                        value = _beat(store, rank)
                        if seen.get(rank, ("", now))[0] != value or rank not in seen:
                            seen[rank] = (value, now)
                        elif now - seen[rank][1] > self.timeout_s + 2 * self.beat_s:
                            self._silent.update(  # others as still: none will acknowledge
                                r for r, (_, changed) in seen.items()
                                if now - changed > self.timeout_s
                            )  # fmt: skip
                            self._stopped(rank, value, now - seen[rank][1])
                self._stop.wait(min(POLL_S, self.beat_s))
        except RuntimeError as error:  # the launcher's store went away
            if self.completed:  # the ranks that finished are leaving: nothing is wrong
                return
            if process.speaks():
                os.write(2, f"mlpcli: error: lost the ranks' store: {error}\n".encode())
            process.end_now(ExitCode.UNAVAILABLE)

    def _stopped(self, rank: int, beat: str, silent_s: float) -> None:
        """Rank `rank`'s heartbeat has stood still past the timeout: every rank ends, exit 3
        (unless the run is complete: then the ranks that finished are leaving)."""
        if self.completed:
            return
        since = f"silent for {silent_s:.0f} s" if beat else "never answered"
        line = (
            f"rank {rank} stopped answering ({since}; timeout: {self.timeout_s} s); every rank ends"
        )
        self.end_with([line], ExitCode.UNAVAILABLE, error_line)


def joined(configs: Sequence[Config]) -> Group:
    """This process's group: joined once, through the launcher's environment (torchrun,
    --nproc), Gloo for the CPU and NCCL for GPUs; a group of one without a launcher."""
    global _joined
    if _joined is not None:
        return _joined
    rank = process.current()
    timeout = max(config.timeout for config in configs)
    if rank is None:
        _joined = Group(Rank(0, 1, 0), timeout)
        return _joined
    cuda = torch.cuda.is_available() and any(config.device.type != "cpu" for config in configs)
    if cuda and rank.local_rank >= (count := torch.cuda.device_count()):
        raise UnavailableError(
            f"rank {rank.rank} is local rank {rank.local_rank}, but this host has {count} CUDA "
            f"device(s): start at most {count} ranks a host"
        )
    if cuda:
        torch.cuda.set_device(rank.local_rank)
    group = Group(rank, timeout)
    process.speak_through(group)
    # torchrun's agent holds the store from the start: the heartbeats begin before the group
    # forms, so that a rank that never arrives is named. Without it (a hand-set MASTER_ADDR),
    # rank 0 makes the store as the group forms, and `timeout` bounds every collective too.
    if agent_store():
        group.watch()
    backend = "cpu:gloo,cuda:nccl" if cuda else "gloo"
    limit = COLLECTIVE_TIMEOUT if agent_store() else timedelta(seconds=timeout)
    with group._checked(), _formed_within(None if agent_store() else timeout):
        dist.init_process_group(backend, timeout=limit)
    if not group.has_store:
        group.has_store = True
        group.watch()
    _joined = group
    return group


@contextlib.contextmanager
def _formed_within(timeout_s: int | None) -> Iterator[None]:
    """A hand-started rank's group formed within `timeout_s` plus JOIN_SLACK_S, or one line and
    exit 3: torch's own limits do not bound every wait (a port where something other than a
    store answers holds the connection open for good). None: heartbeats in the launcher's store
    watch."""
    if timeout_s is None:
        yield
        return
    address = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"

    def give_up() -> None:
        line = (
            f"the process group did not form at MASTER_ADDR:MASTER_PORT ({address}) within "
            f"the timeout ({timeout_s} s): no rank 0 is there, or something other than its "
            "store answers on that port"
        )
        error_line(line)
        process.end_now(ExitCode.UNAVAILABLE)

    timer = threading.Timer(timeout_s + JOIN_SLACK_S, give_up)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _beat(store: Store, rank: int) -> str:
    """`rank`'s heartbeat count ("" before its first)."""
    name = key(f"alive/{rank}")
    return store.get(name).decode() if store.check([name]) else ""

"""The process group of a run over several ranks, with torch: joining it, the collectives the
parallel modes use (each timed), and ending every rank together: one voice, one exit code, and
a rank that stops answering named within the timeout. docs/distributed.md is the guide.

Each rank keeps a heartbeat in the launcher's store and watches it for a failure posted by
another rank; the first rank to fail says why and posts its exit code, and every other rank
ends with that code, silently.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import timedelta

import torch
import torch.distributed as dist
from torch._C._distributed_c10d import Store, TCPStore

from mlpcli import launch
from mlpcli.config import Config, Device
from mlpcli.errors import ExitCode, UnavailableError
from mlpcli.interrupts import Terminated
from mlpcli.launch import Rank

SAID = "mlpcli/said"  # the rank that reported an error before the group was joined
ENDED = "mlpcli/ended"  # "CODE RANK" of the first rank to fail
ACKS = "mlpcli/acks"  # ranks that have seen it
ALIVE = "mlpcli/alive/"  # + rank: the time of its last heartbeat
BEAT_S = 0.5
POLL_S = 0.05
SILENT_S = 4 * BEAT_S  # a rank without a heartbeat this long has stopped
ACK_WAIT_S = 5.0
STORE_TIMEOUT_S = 10  # the failing rank waits this long at most for the others to see it

_joined: Group | None = None


class Group:
    """This process's rank in its group (world size 1 without a launcher), and its collectives."""

    def __init__(self, rank: Rank, timeout_s: int, cuda: bool) -> None:
        self.rank, self.world_size, self.local_rank = rank.rank, rank.world_size, rank.local_rank
        self.timeout_s = timeout_s
        self.cuda = cuda
        self.comm_s = 0.0  # seconds spent waiting on other ranks, since the last reset
        self._sends: list[tuple[dist.Work, torch.Tensor]] = []
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

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
    def _timed(self, device: torch.device) -> Iterator[None]:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        try:
            yield
        except RuntimeError as error:  # a rank died, hung past the timeout, or failed
            raise self.lost(error) from None
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        self.comm_s += time.perf_counter() - start

    def send(self, tensor: torch.Tensor, to: int) -> None:
        """Start sending `tensor` to rank `to`; `flush` waits for every send."""
        tensor = tensor.contiguous()
        with self._timed(tensor.device):
            work = dist.isend(tensor, to)
        assert work is not None
        self._sends.append((work, tensor))

    def recv(self, out: torch.Tensor, source: int) -> torch.Tensor:
        """`out` (contiguous), filled from rank `source`."""
        with self._timed(out.device):
            dist.recv(out, source)
        return out

    def irecv(self, out: torch.Tensor, source: int) -> tuple[dist.Work, torch.Tensor]:
        """Start filling `out` (contiguous) from rank `source`; `wait` for it."""
        with self._timed(out.device):
            work = dist.irecv(out, source)
        assert work is not None
        return work, out

    def wait(self, receiving: Sequence[tuple[dist.Work, torch.Tensor]]) -> None:
        """Wait until every tensor `irecv` started has come."""
        for work, tensor in receiving:
            with self._timed(tensor.device):
                work.wait()

    def flush(self) -> None:
        """Wait until every tensor this rank sent has gone."""
        for work, tensor in self._sends:
            with self._timed(tensor.device):
                work.wait()
        self._sends.clear()

    def all_reduce(self, tensor: torch.Tensor) -> None:
        """Sum `tensor` over the ranks, in place."""
        if self.distributed:
            with self._timed(tensor.device):
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
        with self._timed(shard.device):
            dist.all_gather(parts, padded)
        return torch.cat([part[:, : len(c)] for part, c in zip(parts, columns, strict=True)], 1)

    def barrier(self) -> None:
        if self.distributed:
            with self._timed(torch.device("cpu")):
                dist.barrier()

    def gather(self, value: object) -> list[object] | None:
        """Every rank's `value` on rank 0 (in rank order), None on the others."""
        if not self.distributed:
            return [value]
        gathered: list[object] | None = [None] * self.world_size if self.rank == 0 else None
        with self._timed(torch.device("cpu")):
            dist.gather_object(value, gathered, dst=0)
        return gathered

    def report(self, lines: Sequence[str], code: int) -> int:
        """The first rank to fail says why and posts `code`; every rank ends with that code."""
        store = _client()
        payload = f"{code} {self.rank}"
        try:
            first = store.compare_set(ENDED, "", payload).decode()
        except (RuntimeError, dist.DistError):  # the store is gone: say it here
            first = payload
        if first != payload:  # another rank failed first and said why
            with contextlib.suppress(RuntimeError, dist.DistError):
                store.add(ACKS, 1)
            return int(first.split()[0])
        for line in lines:
            print(f"mlpcli: error: {' '.join(line.splitlines())}", file=sys.stderr)
        sys.stderr.flush()
        deadline = time.monotonic() + ACK_WAIT_S
        # the launcher may end this rank meanwhile (SIGTERM): it has said what it had to say
        with contextlib.suppress(RuntimeError, dist.DistError, Terminated, KeyboardInterrupt):
            while store.add(ACKS, 0) < self.world_size - 1 and time.monotonic() < deadline:
                time.sleep(POLL_S)
        return code

    def finish(self) -> int:
        """Success once every rank has succeeded; the watcher stops between two barriers, so
        that no rank's watcher sees the store go as the first ranks exit."""
        self.barrier()
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()
        self.barrier()
        dist.destroy_process_group()
        launch.joined(None)
        return int(ExitCode.OK)

    def lost(self, error: Exception) -> UnavailableError:
        """What a failed collective means: the ranks whose heartbeat stopped, by name."""
        store = _client()
        deadline = time.monotonic() + SILENT_S + 1
        silent: dict[int, float] = {}
        while not silent and time.monotonic() < deadline:
            silent = {
                rank: age
                for rank in range(self.world_size)
                if rank != self.rank and (age := _age(store, rank)) > SILENT_S
            }
            time.sleep(POLL_S)
        if silent:
            named = ", ".join(f"rank {rank}" for rank in sorted(silent))
            age = max(silent.values())
            since = "never answered" if age == float("inf") else f"silent for {age:.0f} s"
            return UnavailableError(
                f"{named} stopped answering ({since}; timeout: {self.timeout_s} s); every rank ends"
            )
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return UnavailableError(f"rank {self.rank} lost contact with the other ranks: {first}")

    def watch(self) -> None:
        """Keep a heartbeat, and end this rank silently with the code another rank posts."""
        self._watcher = threading.Thread(target=self._watch, name="mlpcli-group", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        store = _client(fresh=True)
        beats = max(1, round(BEAT_S / POLL_S))
        try:
            tick = 0
            while not self._stop.is_set():
                if tick % beats == 0:
                    store.set(f"{ALIVE}{self.rank}", repr(time.time()))
                if store.check([ENDED]):
                    code, rank = store.get(ENDED).decode().split()
                    if int(rank) != self.rank:
                        store.add(ACKS, 1)
                        sys.stdout.flush()
                        os._exit(int(code))
                tick += 1
                self._stop.wait(POLL_S)
        except (RuntimeError, dist.DistError) as error:  # the launcher's store went away
            if launch.speaks():
                os.write(2, f"mlpcli: error: lost the ranks' store: {error}\n".encode())
            os._exit(ExitCode.UNAVAILABLE)


def joined(config: Config) -> Group:
    """This process's group: joined once, through the launcher's environment (torchrun,
    --nproc), Gloo for the CPU and NCCL for GPUs; a group of one without a launcher."""
    global _joined
    if _joined is not None:
        return _joined
    rank = launch.current()
    cuda = config.device.type != "cpu" and torch.cuda.is_available()
    if rank is None:
        _joined = Group(Rank(0, 1, 0), config.timeout, cuda)
        return _joined
    if cuda:
        torch.cuda.set_device(rank.local_rank)
    group = Group(rank, config.timeout, cuda)
    group.watch()  # the heartbeat starts in the launcher's store before the group is formed
    launch.joined(group)
    try:
        dist.init_process_group(
            "cpu:gloo,cuda:nccl" if cuda else "gloo", timeout=timedelta(seconds=config.timeout)
        )
    except RuntimeError as error:  # a rank did not arrive within the timeout
        raise group.lost(error) from None
    _joined = group
    return group


def first_to_say(rank: int) -> bool:
    """Whether `rank` is the first to claim the one voice in the launcher's store (rank 0 if
    the store cannot be reached)."""
    try:
        return _client().compare_set(SAID, "", str(rank)).decode() == str(rank)
    except (KeyError, ValueError, RuntimeError, dist.DistError):
        return rank == 0


_clients: dict[str, Store] = {}


def _client(fresh: bool = False) -> Store:
    """A client of the launcher's store (the one the group rendezvoused through)."""
    key = threading.current_thread().name if fresh else "main"
    if key not in _clients:
        _clients[key] = TCPStore(
            os.environ["MASTER_ADDR"],
            int(os.environ["MASTER_PORT"]),
            is_master=False,
            timeout=timedelta(seconds=STORE_TIMEOUT_S),
        )
    return _clients[key]


def _age(store: Store, rank: int) -> float:
    """Seconds since `rank`'s last heartbeat (infinite before its first)."""
    if not store.check([f"{ALIVE}{rank}"]):
        return float("inf")
    return time.time() - float(store.get(f"{ALIVE}{rank}").decode())

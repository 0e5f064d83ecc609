"""The launcher's store (the TCPStore the ranks rendezvous through: torchrun's agent holds it,
and --nproc's launcher serves it): its keys for this run and a client of it. The process group
keeps its heartbeats and failures there; before the group forms, it decides which rank voices
an error that every rank meets."""

from __future__ import annotations

import os
import socket
import threading
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch._C._distributed_c10d import Store

STORE_TIMEOUT_S = 60  # a store operation's own limit (many ranks on few cores are slow to connect)


def key(name: str) -> str:
    """A store key of this run and restart (torchrun's store outlives a restart)."""
    run = os.environ.get("TORCHELASTIC_RUN_ID", "")
    return f"mlpcli/{run}/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/{name}"


def agent_store() -> bool:
    """Whether the launcher's store is there from the start (torchrun's agent holds it, and
    --nproc's launcher); with a hand-set MASTER_ADDR rank 0 makes it as the group forms."""
    return os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"


def first_to_say(rank: int) -> bool:
    """Whether `rank` is the first to claim the one voice in the launcher's store (rank 0 if
    the store cannot be reached)."""
    if not agent_store():  # no store before the group
        return rank == 0
    try:
        said = client(STORE_TIMEOUT_S).compare_set(key("said"), "", str(rank)).decode()
    except (KeyError, ValueError, RuntimeError):
        return rank == 0
    return said == str(rank)


_clients: dict[str, Store] = {}
_served: list[Store] = []  # the store --nproc's launcher serves, kept while it lives


def serve(listening: socket.socket) -> None:
    """The run's store, served by `--nproc`'s launcher on the socket it bound and listens on
    (taken over): ranks that connect before it serves wait in the socket's queue."""
    import torch
    import torch.distributed as dist

    host, port = listening.getsockname()[:2]
    _served.append(
        dist.TCPStore(  # type: ignore[attr-defined]
            host,
            port,
            is_master=True,
            timeout=timedelta(seconds=STORE_TIMEOUT_S),
            wait_for_workers=False,
            master_listen_fd=listening.detach(),
            # libuv's store takes over a listening socket from torch 2.8 on (pytorch#150215)
            use_libuv=torch.__version__ >= "2.8",
        )
    )


def client(timeout_s: int, fresh: bool = False) -> Store:
    """A client of the launcher's store (the one the group rendezvoused through); `fresh`: a
    connection of this thread's own."""
    import torch.distributed as dist

    thread = threading.current_thread().name if fresh else "main"
    if thread not in _clients:
        _clients[thread] = dist.TCPStore(  # type: ignore[attr-defined]
            os.environ["MASTER_ADDR"],
            int(os.environ["MASTER_PORT"]),
            is_master=False,
            timeout=timedelta(seconds=max(STORE_TIMEOUT_S, timeout_s)),
        )
    return _clients[thread]

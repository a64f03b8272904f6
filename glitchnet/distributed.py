"""Running on torch.distributed: torchrun's environment, the process group, rank-0 helpers, agreed failures, shards.

Every function here also works in a plain process (no torchrun): the world is then one rank and the collectives
return at once, so the same code path serves a laptop, one GPU server and a multi-node job. torch is imported only
when a function needs it, so the CLI can read ``BACKENDS`` and start instantly.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from .config import LR_SCALING
from .errors import GlitchNetError, one_line

if TYPE_CHECKING:
    import torch

BACKENDS = ("auto", "gloo", "nccl")
"""``auto`` picks NCCL when the ranks drive CUDA devices and gloo on CPU."""
TIMEOUT = timedelta(hours=2)
"""How long a rank waits for the others at a collective. Generous, because on a first run local rank 0 decodes the
whole dataset into the image cache while the other ranks of its node wait (about 3 minutes for the 32,000 Gravity Spy
images on 2 cores; a 1M-image set takes far longer)."""

T = TypeVar("T")


class RankError(GlitchNetError):
    """A failure on one rank that ends the whole run; the message names the rank (``rank 1: ...``).

    ``agreed`` is True when every rank learnt of the failure at the same collective and raises this same error:
    then only rank 0 reports it, so a run prints one line whichever rank failed.
    """

    def __init__(self, rank: int, message: str, agreed: bool = False) -> None:
        super().__init__(f"rank {rank}: {message}")
        self.rank, self.message, self.agreed = rank, message, agreed


# --------------------------------------------------------------------------------------------------- environment


@dataclass(frozen=True)
class World:
    """This process's place in the run. Without torchrun: rank 0 of a world of one."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device | None = None
    """The device this rank computes on (set by ``process_group``)."""
    backend: str | None = None
    """"gloo" or "nccl" while a process group is up; None for a world of one."""

    @property
    def is_main(self) -> bool:
        """Rank 0: the one rank that writes checkpoints, metrics, merged outputs and progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def read_env(environ: Mapping[str, str] | None = None) -> World:
    """Rank, world size and local rank from torchrun's ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``.

    Absent variables mean a plain process (rank 0 of 1); malformed ones are a one-line ``ValueError``.
    """
    environ = os.environ if environ is None else environ
    values = {}
    for name, default in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", None)):
        text = environ.get(name, "").strip()
        if not text:
            values[name] = default
            continue
        try:
            values[name] = int(text)
        except ValueError:
            raise ValueError(f"{name}={text!r} in the environment is not an integer (set by torchrun)") from None
    rank, world_size = values["RANK"], values["WORLD_SIZE"]
    local_rank = rank if values["LOCAL_RANK"] is None else values["LOCAL_RANK"]
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise ValueError(f"RANK={rank}, WORLD_SIZE={world_size}, LOCAL_RANK={local_rank} in the environment do not "
                         "describe a rank of a world (torchrun sets 0 <= RANK < WORLD_SIZE)")
    return World(rank=rank, world_size=world_size, local_rank=local_rank)


def device_for(world: World, device: str = "auto") -> torch.device:
    """The device this rank drives: ``auto`` (CUDA when available, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``;
    anything else is refused in one line. "auto" and "cuda" take this node's GPU number ``LOCAL_RANK`` (GPU 0 for a
    plain process), so torchrun's N processes per node drive its N GPUs."""
    import torch

    from .errors import TrainingError

    name = device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise TrainingError(f"device must be auto, cpu, cuda or cuda:N, not {name!r}") from None
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError(f"device {name!r}: no CUDA GPU is available here (use --device cpu or auto)")
        if chosen.index is None:
            chosen = torch.device("cuda", world.local_rank)
        if chosen.index >= torch.cuda.device_count():
            raise TrainingError(f"device {name!r}: only {torch.cuda.device_count()} CUDA GPU(s) here"
                                + (f", and this is local rank {world.local_rank}: start at most that many processes "
                                   "per node" if world.distributed else ""))
    elif chosen.type != "cpu":
        raise TrainingError(f"device must be auto, cpu, cuda or cuda:N, not {name!r}")
    return chosen


def backend_for(device: torch.device, backend: str = "auto") -> str:
    """The collective backend: NCCL for CUDA devices, gloo for the CPU; an explicit choice is checked, not guessed."""
    import torch.distributed as dist

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and device.type != "cuda":
        raise ValueError("the nccl backend needs CUDA devices; use gloo (or auto) on the CPU")
    available = {"gloo": dist.is_gloo_available(), "nccl": dist.is_nccl_available()}
    if not available[backend]:
        raise ValueError(f"this PyTorch build has no {backend} backend")
    return backend


@contextmanager
def process_group(device: str = "auto", backend: str = "auto", environ: Mapping[str, str] | None = None
                  ) -> Iterator[World]:
    """This rank's ``World``, with the default process group up for the duration when the world has several ranks.

    The rendezvous is torchrun's (``env://``: ``MASTER_ADDR``/``MASTER_PORT`` or its c10d store), so one machine and
    many are started the same way. A world of one starts no process group at all.
    """
    import torch
    import torch.distributed as dist

    base = read_env(environ)
    torch_device = device_for(base, device)
    if base.world_size == 1:
        yield World(device=torch_device)
        return
    chosen = backend_for(torch_device, backend)
    if torch_device.type == "cuda":
        torch.cuda.set_device(torch_device)
    if dist.is_initialized():  # started by a caller (a test, a notebook): use it as it is
        yield World(base.rank, base.world_size, base.local_rank, torch_device, dist.get_backend())
        return
    dist.init_process_group(chosen, rank=base.rank, world_size=base.world_size, timeout=TIMEOUT,
                            device_id=torch_device if torch_device.type == "cuda" else None)
    try:
        yield World(base.rank, base.world_size, base.local_rank, torch_device, chosen)
    finally:
        dist.destroy_process_group()


def run(body: Callable[[World], T], device: str = "auto", backend: str = "auto") -> T:
    """Run ``body(world)`` on this rank inside ``process_group``; how a command runs under torchrun or without it.

    In a world of several ranks any exception becomes a ``RankError`` naming the rank it happened on. An error every
    rank agreed on (see ``all_ranks_ok``) is reported by rank 0 alone; the other ranks leave with the same exit
    status and print nothing, so the run ends with one line. Alone, exceptions pass through untouched.
    """
    with process_group(device, backend) as world:
        if not world.distributed:
            return body(world)
        try:
            result = body(world)
        except RankError as exc:
            if exc.agreed:
                barrier()  # every rank is alive and here: take the process group down together, not in a race
                if not world.is_main:
                    raise SystemExit(2) from None
            raise
        except Exception as exc:
            raise RankError(world.rank, one_line(exc)) from exc
        barrier()
        return result


# ------------------------------------------------------------------------------------------------- collectives


def _dist():
    import torch.distributed as dist

    return dist


def _initialized() -> bool:
    dist = _dist()
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return _dist().get_rank() if _initialized() else 0


def world_size() -> int:
    return _dist().get_world_size() if _initialized() else 1


def is_main() -> bool:
    """True on rank 0 (and in a plain process): the rank that writes files and reports progress."""
    return rank() == 0


def barrier() -> None:
    """Wait until every rank gets here (nothing to wait for in a world of one)."""
    if _initialized():
        _dist().barrier()


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    if not _initialized():
        return [obj]
    dist = _dist()
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (the others' argument is ignored)."""
    if not _initialized():
        return obj
    dist = _dist()
    box = [obj if dist.get_rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def check_all_ranks(error: BaseException | str | None) -> None:
    """Collective: each rank says whether its step failed; if any did, every rank raises the same ``RankError``
    naming the lowest failing rank. A world of one re-raises its own exception unchanged.

    Call it at the points where ranks can fail independently (reading a dataset, writing a part file) so that one
    rank's failure ends every rank with one clear line instead of leaving the others waiting at the next collective.
    """
    if not _initialized():
        if isinstance(error, BaseException):
            raise error
        if error is not None:
            raise RankError(0, error)
        return
    message = None if error is None else (error if isinstance(error, str) else one_line(error))
    failures = all_gather_object(message)
    for failed_rank, text in enumerate(failures):
        if text is not None:
            raise RankError(failed_rank, text, agreed=True) from (error if isinstance(error, BaseException) else None)


@contextmanager
def all_ranks_ok() -> Iterator[None]:
    """``with all_ranks_ok(): step()`` runs ``step`` on every rank, then ``check_all_ranks`` with its outcome."""
    error: Exception | None = None
    try:
        yield
    except Exception as exc:
        error = exc
    check_all_ranks(error)


def main_first(body: Callable[[], T], local: bool = True) -> T:
    """Run ``body`` on rank 0 (``local``: on each node's local rank 0) first, then on the others once it has finished,
    e.g. to build a shared on-disk cache once. A failure on any rank ends every rank (``check_all_ranks``)."""
    leader = _local_rank() == 0 if local else rank() == 0
    result: Any = None
    if leader:
        with all_ranks_ok():
            result = body()
    else:
        check_all_ranks(None)
    if not leader:
        with all_ranks_ok():
            result = body()
    else:
        check_all_ranks(None)
    return result


def _local_rank() -> int:
    return read_env().local_rank if _initialized() else 0


# ---------------------------------------------------------------------------------------------------- sharding


def shard(items: Sequence[T], rank_: int | None = None, world_size_: int | None = None) -> list[T]:
    """This rank's share of ``items``: every ``world_size``-th item starting at ``rank`` (balanced to within one,
    deterministic for a given order). Every rank must pass the same sequence in the same order."""
    r = rank() if rank_ is None else rank_
    w = world_size() if world_size_ is None else world_size_
    return list(items[r::w])


def shard_groups(items: Sequence[T], key: Callable[[T], Hashable], rank_: int | None = None,
                 world_size_: int | None = None) -> list[T]:
    """This rank's share of ``items`` with all items of one group (same ``key``) on the same rank.

    Groups are sorted by ``repr(key)`` and dealt round-robin, so the split depends only on the set of items and the
    world size; within the share, items keep their group together and their input order within a group.
    """
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    order = sorted(groups, key=repr)
    mine = shard(order, rank_, world_size_)
    return [item for k in mine for item in groups[k]]


def sum_over_ranks(*values: float) -> tuple[float, ...]:
    """Each value summed over the ranks (e.g. images seen and summed loss in an epoch), the same on every rank."""
    if not _initialized():
        return tuple(values)
    gathered = all_gather_object(tuple(values))
    return tuple(sum(column) for column in zip(*gathered))


def check_same(value: Any, what: str, describe: Callable[[Any], str] = str) -> None:
    """Collective: every rank must hold the same ``value`` (e.g. a dataset's fingerprint); if one differs, every rank
    raises the same ``RankError`` naming it: "its {what} differs from rank 0's: {describe(its)} against ..."."""
    if not _initialized():
        return
    values = all_gather_object(value)
    for r, v in enumerate(values):
        if v != values[0]:
            raise RankError(r, f"its {what} differs from rank 0's: {describe(v)} against {describe(values[0])}",
                            agreed=True)


# ---------------------------------------------------------------------------------------- learning rate, BatchNorm


def lr_scale(rule: str, world_size_: int) -> float:
    """The factor applied to ``--lr`` for ``world_size_`` ranks: the global batch is N × the per-rank batch, and the
    rate grows N-fold (``linear``, Goyal et al. 2017, "Accurate, Large Minibatch SGD"), √N-fold (``sqrt``, gentler,
    often preferred for Adam-type optimizers) or not at all (``none``). One rank always trains at ``--lr`` itself."""
    if rule not in LR_SCALING:
        raise ValueError(f"learning-rate scaling must be one of {', '.join(LR_SCALING)}, not {rule!r}")
    return {"linear": float(world_size_), "sqrt": world_size_ ** 0.5, "none": 1.0}[rule]


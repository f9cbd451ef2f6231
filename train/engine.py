"""DeepSpeed set-up shared by every training loop: process group, engine, and small collective helpers.

Runs the same way on one CPU process (no launcher: the environment a launcher would set is filled in),
on several processes started by `deepspeed` or `torchrun` (gloo on CPU), or on GPUs. The YAML `deepspeed:`
section is passed to `deepspeed.initialize` verbatim, plus the three batch keys derived from our config.
Unless that section brings its own `optimizer` / `scheduler`, the engine gets a torch AdamW (no C++ build
on CPU) and a linear warm-up/decay schedule.

`RankLocal` lets one rank of a launched run train a model by itself, exactly as a one-process run would,
while the other ranks do other work (the Evaluator splits candidates across ranks this way): its groups
hold this rank alone, `build_engine(..., mpu=local)` builds the engine on them, and inside `local.active()`
DeepSpeed's module-level groups (read again at every gradient all-reduce and clip) and our collective
helpers (`mean_over_ranks`, `barrier`) stay on this rank.
"""

from __future__ import annotations

import contextlib
import copy
import os
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar

import deepspeed
import torch
import torch.distributed as dist
from transformers import PreTrainedModel, get_linear_schedule_with_warmup

from autobert_zero.config.load import BatchPlan
from autobert_zero.errors import ConfigError, TrainingError

T = TypeVar("T")
R = TypeVar("R")
_RANK_LOCAL: ContextVar[bool] = ContextVar("rank_local", default=False)
"""True inside `RankLocal.active()`: the collective helpers below act on this rank alone."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for a process group's rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SHM_COMM_OP = "deepspeed_shm_comm"
"""DeepSpeed's name of its shared-memory communication op (`ShareMemCommBuilder.NAME`)."""


def skip_shm_comm_build() -> None:
    """Tell DeepSpeed not to build its shared-memory communication op: on the CPU accelerator that is a C++
    build (~30 s at the first `deepspeed.init_distributed`) which our gloo process groups never use (GPU
    accelerators have no such op, and then this changes nothing).

    There is no public switch. DeepSpeed builds the op only if its private table
    `deepspeed.ops.__compatible_ops__` (op name → buildable here) says so (`deepspeed.comm.torch.build_shm_op`),
    so this sets the op's entry to False. If a DeepSpeed release drops the table or renames the op, this
    raises `TrainingError` instead of silently going back to the slow build: check what that release
    offers and update this function (its test, `tests/train/test_engine.py`, fails the same way)."""
    from deepspeed.accelerator import get_accelerator

    table = getattr(deepspeed.ops, "__compatible_ops__", None)
    builder = get_accelerator().get_op_builder("ShareMemCommBuilder")
    name = getattr(builder, "NAME", SHM_COMM_OP)
    if not isinstance(table, dict) or name != SHM_COMM_OP:
        raise TrainingError(f"deepspeed {deepspeed.__version__}: no deepspeed.ops.__compatible_ops__ table, or its "
                            f"shared-memory comm op is now called {name!r} (not {SHM_COMM_OP!r}); update "
                            f"train/engine.py:skip_shm_comm_build for this DeepSpeed release")
    table[SHM_COMM_OP] = False


PORT_ATTEMPTS = 5
"""Rendezvous ports tried by a process alone that picked its own (a free port can be taken before it listens)."""


def _port_taken(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "eaddrinuse" in text or "address already in use" in text or "failed to listen" in text


def init_distributed() -> tuple[int, int]:
    """Join (or, alone, create) the process group; returns (rank, world_size).

    Under a launcher (`deepspeed`, `torchrun`, one node or several) the group comes from the environment it
    sets: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT. Without one, a group of one process on
    127.0.0.1 and a free port (or MASTER_PORT, if set); a free port another process takes before ours listens
    is replaced by another (up to `PORT_ATTEMPTS` tries). A rendezvous port given by a launcher or MASTER_PORT
    that another program holds is a `TrainingError` naming the port, within seconds (torch's store fails to
    listen; it does not wait)."""
    picked = "RANK" not in os.environ and "MASTER_PORT" not in os.environ  # the port is ours to choose
    if "RANK" not in os.environ:  # no launcher: a group of one, as deepspeed would otherwise ask mpi4py
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(free_port()))
    skip_shm_comm_build()
    for attempt in range(PORT_ATTEMPTS):
        if dist.is_initialized():
            break
        try:
            deepspeed.init_distributed(verbose=False)
        except RuntimeError as exc:  # torch.distributed.DistNetworkError is one
            if not _port_taken(exc):
                raise
            if picked and attempt + 1 < PORT_ATTEMPTS:  # another process took the free port first: pick again
                os.environ["MASTER_PORT"] = str(free_port())
                continue
            port, addr = os.environ.get("MASTER_PORT"), os.environ.get("MASTER_ADDR")
            raise TrainingError(
                f"the rendezvous port MASTER_PORT={port} on {addr} is already in use (another job on this node?): "
                f"{str(exc).strip().splitlines()[0][:200]}. Give every job sharing a node its own port: "
                f"`deepspeed --master_port P ...` or `torchrun --master_port P ...` (before the script or "
                f"--module), or, for one process without a launcher, unset MASTER_PORT (abz then picks a free "
                f"one)") from None
    return dist.get_rank(), dist.get_world_size()


def zero_stage(section: Mapping[str, Any]) -> int:
    """The ZeRO stage a `deepspeed:` section asks for (0 when it names none)."""
    return int(section.get("zero_optimization", {}).get("stage", 0))


ZERO3_COMMANDS = "`abz pretrain` and `abz finetune`"
"""Where ZeRO-3 works: the loops that gather the partitioned weights for their export (`full_weights`) and
touch the model only through its forward. The supernet (which swaps candidates' modules in and out and
shares their weights) and candidate evaluation (rank-local engines, weights extracted from a supernet) do not."""


def check_zero_stage(section: Mapping[str, Any], command: str) -> None:
    """Refuse ZeRO-3 for `command` (one other than those of `ZERO3_COMMANDS`), naming the stages that work."""
    if zero_stage(section) == 3:
        raise ConfigError(f"deepspeed.zero_optimization.stage = 3 (ZeRO-3) is supported by {ZERO3_COMMANDS} only, "
                          f"not by {command}: its weights are swapped and shared between candidates, which "
                          f"ZeRO-3's partitioned parameters do not allow; use stage 0, 1 or 2 (2 partitions "
                          f"gradients and optimizer states)")


@contextlib.contextmanager
def full_weights(engine: Any) -> Iterator[None]:
    """Within the block, the engine's module holds its full weights on every rank, also under ZeRO-3, which
    keeps only a 1/world_size slice of each weight per rank (`deepspeed.zero.GatheredParameters`; read-only:
    changes made inside are dropped). Collective under ZeRO-3: every rank must enter the block, even those
    that only wait while rank 0 saves. Stages 0–2 hold full weights anyway: nothing to do."""
    if engine.zero_optimization_stage() != 3:
        yield
        return
    with deepspeed.zero.GatheredParameters(list(engine.module.parameters()), modifier_rank=None):
        yield


def parameter_count(model: torch.nn.Module) -> int:
    """Number of parameters of a model, also while ZeRO-3 has partitioned them (`ds_numel`: the full size)."""
    return sum(int(getattr(p, "ds_numel", p.numel())) for p in model.parameters())


def _alone() -> bool:
    return not dist.is_initialized() or dist.get_world_size() == 1 or _RANK_LOCAL.get()


def barrier() -> None:
    if not _alone():
        dist.barrier()


def mean_over_ranks(value: float) -> float:
    """The mean of a float over all processes (the value itself on one process, or inside `RankLocal.active()`)."""
    if _alone():
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def round_robin(items: Sequence[T], score: Callable[[list[T]], Sequence[R]]) -> list[R]:
    """`score` applied to this rank's share of `items` (entries rank, rank + world, …), the results
    all-gathered back into list order, so every rank returns what `score(items)` returns on one process.
    Collective: every rank calls it with the same list. On one process (or inside `RankLocal.active()`) it
    is just `score(items)`."""
    if _alone():
        return list(score(list(items)))
    rank, world = dist.get_rank(), dist.get_world_size()
    mine = list(score(list(items[rank::world])))
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, mine)
    return [gathered[i % world][i // world] for i in range(len(items))]


class RankLocal:
    """An `mpu` for `deepspeed.initialize` whose data- and model-parallel groups hold this rank alone: an engine
    built with it (and trained inside `active()`) computes what a one-process run computes, with no collective
    reaching another rank. Constructing one is collective: every rank of the default group must do it at the
    same point of the program (it creates one single-rank group per rank)."""

    def __init__(self) -> None:
        self.group, _ = dist.new_subgroups(group_size=1)

    def get_data_parallel_group(self) -> Any:
        return self.group

    def get_data_parallel_rank(self) -> int:
        return 0

    def get_data_parallel_world_size(self) -> int:
        return 1

    def get_model_parallel_group(self) -> Any:
        return self.group

    def get_model_parallel_rank(self) -> int:
        return 0

    def get_model_parallel_world_size(self) -> int:
        return 1

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Build and train rank-local engines inside: DeepSpeed reads its module-level `groups.mpu` at every
        gradient all-reduce and gradient clip (not only when the engine is built), so it points here until
        the block ends and then goes back to what it was (the world, for engines built without an mpu)."""
        from deepspeed.utils import groups

        saved, token = groups.mpu, _RANK_LOCAL.set(True)
        groups.mpu = self
        try:
            yield
        finally:
            groups.mpu = saved
            _RANK_LOCAL.reset(token)


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on matrices and kernels; none on 1-D parameters (every bias, LayerNorm
    weight and the like), in parameter order."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def deepspeed_config(section: dict[str, Any], plan: BatchPlan) -> dict[str, Any]:
    """The config handed to deepspeed: the YAML section verbatim plus the derived batch keys."""
    config = copy.deepcopy(section)
    config.update(plan.deepspeed_keys())
    return config


def build_engine(model: PreTrainedModel, section: dict[str, Any], plan: BatchPlan, lr: float,
                 weight_decay: float, total_steps: int, warmup_steps: int, mpu: RankLocal | None = None,
                 allow_zero3: bool = False) -> Any:
    """`deepspeed.initialize` the model; returns the engine (a `DeepSpeedEngine`). With `mpu` (a `RankLocal`,
    whose `active()` block must enclose this call and the training) the engine is this rank's alone and
    `plan` must be a world-size-1 plan. ZeRO-3 only with `allow_zero3` (from the loops of `ZERO3_COMMANDS`,
    which export through `full_weights`); otherwise stage 3 gets `check_zero_stage`'s refusal."""
    if not allow_zero3 or mpu is not None:
        check_zero_stage(section, "this run (candidate evaluation, search or supernet training)")
    config = deepspeed_config(section, plan)
    optimizer = None if "optimizer" in config else torch.optim.AdamW(_param_groups(model, weight_decay), lr=lr)

    def schedule(opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        return get_linear_schedule_with_warmup(opt, warmup_steps, total_steps)

    try:
        engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=config,
                                          model_parameters=None if optimizer else model.parameters(),
                                          lr_scheduler=None if "scheduler" in config else schedule, mpu=mpu)
    except (ValueError, AssertionError, KeyError, TypeError) as exc:
        raise TrainingError(f"deepspeed.initialize rejected the config: {type(exc).__name__}: {exc} "
                            f"(the deepspeed: section is passed verbatim; check it against DeepSpeed's docs)") from None
    return engine


def unwrap(engine: Any) -> PreTrainedModel:
    """The Hugging Face model inside an engine."""
    module = engine.module
    assert isinstance(module, PreTrainedModel)
    return module

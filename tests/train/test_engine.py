"""The DeepSpeed set-up (train/engine.py): AdamW parameter groups, and the one private DeepSpeed switch we
write, which must fail loudly when a DeepSpeed release changes it."""

from __future__ import annotations

from pathlib import Path

import deepspeed
import pytest

from autobert_zero.errors import TrainingError
from autobert_zero.grammar import parse_genotype
from autobert_zero.train import engine
from autobert_zero.train.models import build_mlm_model
from tests.support.training import tiny_config

GENOTYPE = ("attention a { return matmul(softmax(scale(matmul(Q, transpose(K)))), V) }\n"
            "backbone {\n  conv depthwise kernel=3 dilation=2\n  attention a\n}\n")


def test_weight_decay_spares_every_1d_parameter_and_only_those(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    model = build_mlm_model(parse_genotype(GENOTYPE), cfg.model, 100, 0)
    decay, no_decay = engine._param_groups(model, 0.01)
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.01, 0.0)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    spared = {names[id(p)] for p in no_decay["params"]}
    assert decayed | spared == set(names.values()) and not decayed & spared
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert any(n.endswith("norm.weight") for n in spared) and any(n.endswith(".bias") for n in spared)
    assert "autobert.embeddings.word_embeddings.weight" in decayed


def test_the_shm_comm_switch_is_where_deepspeed_reads_it() -> None:
    """DeepSpeed builds the shared-memory comm op only if `__compatible_ops__[builder.NAME]` is true
    (`deepspeed.comm.torch.build_shm_op`): the CPU builder still has our name, and the switch is off."""
    from deepspeed.accelerator.cpu_accelerator import CPU_Accelerator

    assert CPU_Accelerator().get_op_builder("ShareMemCommBuilder").NAME == engine.SHM_COMM_OP
    engine.skip_shm_comm_build()
    assert deepspeed.ops.__compatible_ops__[engine.SHM_COMM_OP] is False


def test_the_shm_comm_switch_fails_loudly_when_deepspeed_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    from deepspeed.accelerator import get_accelerator

    monkeypatch.setattr(deepspeed.ops, "__compatible_ops__", None, raising=False)  # the table is gone
    with pytest.raises(TrainingError, match=r"update train/engine\.py:skip_shm_comm_build"):
        engine.skip_shm_comm_build()
    monkeypatch.setattr(deepspeed.ops, "__compatible_ops__", {}, raising=False)
    monkeypatch.setattr(engine, "SHM_COMM_OP", "deepspeed_shm_comm_v1")  # the op was renamed
    if get_accelerator().get_op_builder("ShareMemCommBuilder") is not None:  # the CPU accelerator has the op
        with pytest.raises(TrainingError, match=r"now called 'deepspeed_shm_comm'"):
            engine.skip_shm_comm_build()


RACE = """
import socket, sys
from autobert_zero.train import engine
held = socket.socket(); held.bind(("127.0.0.1", 0)); held.listen()
ports = [held.getsockname()[1]]  # the first "free" port is taken before the store listens on it
real = engine.free_port
engine.free_port = lambda: ports.pop() if ports else real()
print(engine.init_distributed())
"""


def test_a_free_port_taken_before_the_store_listens_is_replaced() -> None:
    """Alone, abz picks its rendezvous port; when another process takes it first, it picks another instead of
    failing (as a search did when a test suite ran beside it)."""
    import subprocess
    import sys

    from tests.support.training import subprocess_env

    env = {k: v for k, v in subprocess_env().items() if k not in ("RANK", "WORLD_SIZE", "MASTER_PORT")}
    done = subprocess.run([sys.executable, "-c", RACE], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("(0, 1)")

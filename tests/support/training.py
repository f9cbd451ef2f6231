"""Helpers shared by the tests/test_train_*.py files: a microscopic config, genotype and corpus.

Sizes follow the house rule for tests (hidden 32, 2 layers, sequences of 32 tokens), so a training step
takes milliseconds and a whole run a few seconds on a CPU.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from autobert_zero.config.load import config_from_dict
from autobert_zero.config.schema import Config
from tests.support.paths import REPO

VANILLA = "attention vanilla { return matmul(softmax(scale(matmul(Q, transpose(K)))), V) }\n"


LAUNCHER_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: the repository importable, and none of the process-group
    variables that an in-process run (which forms a group of one) leaves in `os.environ`."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return {**env, **extra}


def write_genotype(folder: Path, layers: int = 2) -> Path:
    """A vanilla-BERT genotype file of `layers` layers."""
    path = folder / f"bert{layers}.abz"
    path.write_text(VANILLA + "backbone {\n" + "  attention vanilla\n" * layers + "}\n", encoding="utf-8")
    return path


def write_corpus(folder: Path, chars: int = 60_000) -> Path:
    """A small English text file (Python's own pydoc topics), one paragraph per line."""
    from pydoc_data.topics import topics

    text = "\n".join(" ".join(topics[name].split()) for name in sorted(topics))[:chars]
    path = folder / "corpus.txt"
    path.write_text(text + "\n", encoding="utf-8")
    return path


def tiny_dict(tmp: Path, **sections: Any) -> dict[str, Any]:
    """A microscopic config mapping whose files live under `tmp`; `sections` update single sections' keys."""
    data: dict[str, Any] = {
        "genotype": str(write_genotype(tmp)),
        "seed": 0,
        "model": {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64,
                  "max_position_embeddings": 64},
        "data": {"corpus": str(write_corpus(tmp)), "vocab_size": 512, "max_seq_length": 32, "eval_blocks": 8,
                 "tokenizer_cache_dir": str(tmp / "tokenizers")},
        "pretrain": {"max_steps": 12, "micro_batch_size": 4, "warmup_steps": 2, "checkpoint_every": 4,
                     "lr": 1e-3, "keep_checkpoints": 3},
        "finetune": {"epochs": 1, "max_steps": 6, "micro_batch_size": 8, "max_seq_length": 32,
                     "max_train_examples": 48, "eval_batch_size": 64},
        "logging": {"log_every": 1, "progress_bar": False},
        "deepspeed": {"zero_optimization": {"stage": 0}, "gradient_clipping": 1.0, "steps_per_print": 10**9},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values} if isinstance(values, dict) else values
    return data


def tiny_config(tmp: Path, **sections: Any) -> Config:
    """`tiny_dict` as a checked config (world size 1)."""
    return config_from_dict(tiny_dict(tmp, **sections), source="tiny-test-config", world_size=1)


def tiny_yaml(tmp: Path, **sections: Any) -> Path:
    """`tiny_dict` written as a YAML file (for command-line runs)."""
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_dict(tmp, **sections), sort_keys=False), encoding="utf-8")
    return path


def with_section(cfg: Config, name: str, **changes: Any) -> Config:
    """A copy of `cfg` with keys of section `name` changed."""
    return dataclasses.replace(cfg, **{name: dataclasses.replace(getattr(cfg, name), **changes)})


_KILLER = """
import os, signal, sys
from pathlib import Path
from deepspeed.runtime.engine import DeepSpeedEngine
from tests.support.training import tiny_config
from {module} import {function} as run

original = DeepSpeedEngine.save_checkpoint

def save_then_die(self, save_dir, tag=None, **kwargs):
    result = original(self, save_dir, tag=tag, **kwargs)
    if tag == ".tmp-step-00000008":  # files written, not yet renamed, `latest` not yet moved
        os.kill(os.getpid(), signal.SIGKILL)
    return result

DeepSpeedEngine.save_checkpoint = save_then_die
tmp = Path(sys.argv[1])
run(tiny_config(tmp), tmp / "killed")
"""


def run_killed_while_checkpointing(tmp: Path, runner: str) -> subprocess.CompletedProcess[str]:
    """Run `runner` ("module:function", called as f(tiny_config(tmp), tmp / "killed")) in a child process
    that is SIGKILLed right after the files of its step-8 checkpoint are written, before they are renamed
    into place and `latest` moves."""
    module, function = runner.split(":")
    return subprocess.run([sys.executable, "-c", _KILLER.format(module=module, function=function), str(tmp)],
                          env=subprocess_env(), cwd=REPO, capture_output=True, text=True, timeout=300)

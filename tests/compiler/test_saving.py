"""Saving without DeepSpeed's start-up log: the logger filter of `compiler/saving.py` still matches DeepSpeed.

Each check runs in a fresh interpreter (this test process may have imported deepspeed already). If DeepSpeed
renames its logger, the silenced import prints and the first test fails; if DeepSpeed stops logging at import,
the unsilenced control prints nothing and it fails too: then the filter has no purpose and can go.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.paths import GENOTYPES, REPO


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


def test_deepspeeds_import_log_is_dropped_while_saving_and_only_then() -> None:
    silenced = run_python("import logging\n"
                          "from autobert_zero.compiler.saving import DEEPSPEED_LOGGER, deepspeed_logs_silenced\n"
                          "with deepspeed_logs_silenced():\n"
                          "    import deepspeed\n"
                          "assert logging.getLogger(DEEPSPEED_LOGGER).filters == []  # removed after the block\n"
                          "logging.getLogger(DEEPSPEED_LOGGER).warning('after the block')")
    assert "accelerator" not in silenced.stdout + silenced.stderr
    assert "after the block" in silenced.stdout  # training logs as usual
    control = run_python("import deepspeed")
    assert "accelerator" in control.stdout + control.stderr, "DeepSpeed no longer logs at import: drop the filter"


def test_save_pretrained_prints_nothing(tmp_path: Path) -> None:
    out = tmp_path / "model"
    saved = run_python("from autobert_zero.compiler import AutoBertZeroConfig, AutoBertZeroModel\n"
                       "from autobert_zero.compiler.saving import save_pretrained\n"
                       f"text = open({str(GENOTYPES / 'bert.abz')!r}).read()\n"
                       "config = AutoBertZeroConfig(genotype=text, vocab_size=50, hidden_size=16, "
                       "num_attention_heads=2, intermediate_size=32)\n"
                       f"save_pretrained(AutoBertZeroModel(config), {str(out)!r})")
    assert saved.stdout == ""
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()

"""The language stays light: the package, the grammar, the search and the commands that do not train import
neither torch nor transformers (nor DeepSpeed); the HF classes still register on first use.

Each check runs in a fresh interpreter, since this test process has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.paths import GENOTYPES, REPO

HEAVY = ("torch", "transformers", "deepspeed")


def run_python(code: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


def loaded_after(statements: str) -> list[str]:
    """Which of HEAVY are in sys.modules after running `statements` in a fresh interpreter."""
    code = f"import json, sys\n{statements}\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    return json.loads(run_python(code).stdout.splitlines()[-1])


def test_package_grammar_search_and_analysis_import_no_training_stack() -> None:
    assert loaded_after("import autobert_zero") == []
    assert loaded_after("import autobert_zero.grammar, autobert_zero.evolve, autobert_zero.compiler") == []
    statements = ("from autobert_zero.compiler.analysis import StaticSizes, flops_per_token, parameter_report\n"
                  "from autobert_zero.grammar import load_genotype\n"
                  f"g = load_genotype({str(GENOTYPES / 'autobert_zero.abz')!r})\n"
                  "assert parameter_report(g, StaticSizes()).total > 0\n"
                  "assert flops_per_token(g, StaticSizes(), 128).per_token > 0")
    assert loaded_after(statements) == []


def test_check_and_show_import_no_training_stack_and_print_no_deepspeed_warning(tmp_path: Path) -> None:
    genotype = str(GENOTYPES / "bert.abz")
    statements = ("from autobert_zero.cli import main\n"
                  f"assert main(['check', {genotype!r}]) == 0\n"
                  f"assert main(['show', {genotype!r}, '--svg', {str(tmp_path / 'g.svg')!r}]) == 0")
    assert loaded_after(statements) == []
    cli = subprocess.run([sys.executable, "-m", "autobert_zero", "check", genotype], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert cli.returncode == 0 and "ok" in cli.stdout
    assert cli.stderr == ""
    assert "accelerator" not in cli.stdout  # DeepSpeed's "Setting accelerator to CPU" goes to stdout


def test_compile_imports_no_deepspeed_and_the_folder_loads_after_touching_a_class(tmp_path: Path) -> None:
    out = tmp_path / "model"
    statements = ("from autobert_zero.cli import main\n"
                  f"assert main(['compile', {str(GENOTYPES / 'bert.abz')!r}, '--out', {str(out)!r}, '--hidden', '16',"
                  " '--heads', '2', '--intermediate', '32', '--vocab-size', '50']) == 0")
    assert loaded_after(statements) == ["torch", "transformers"]
    load = ("import autobert_zero\nfrom transformers import AutoModel\n"
            "assert autobert_zero.AutoBertZeroConfig.model_type == 'autobert-zero'  # first use registers\n"
            f"print(type(AutoModel.from_pretrained({str(out)!r})).__name__)")
    assert run_python(load).stdout.split()[-1] == "AutoBertZeroModel"

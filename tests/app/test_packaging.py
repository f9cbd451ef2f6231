"""Packaging: the shipped genotypes and configs are package data read through `importlib.resources`, optional
features name the extra that installs them, and a built wheel works outside the source tree.

`test_wheel_in_a_fresh_venv_runs_the_quick_start` installs the wheel and its dependencies from the package
index into a new venv (minutes), so it is marked slow: `python -m pytest -m slow` runs it, and CI does.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from autobert_zero.config.paths import SHIPPED_FOLDERS, resolve_shipped, shipped_file, shipped_names
from autobert_zero.errors import ConfigError
from tests.support.paths import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
SHIPPED = [f"{folder}/{p.name}" for folder in SHIPPED_FOLDERS for p in sorted((REPO / folder).iterdir())
           if p.is_file()]
LAUNCHER_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def test_every_file_of_the_shipped_folders_is_package_data() -> None:
    setuptools = PYPROJECT["tool"]["setuptools"]
    for folder, package in SHIPPED_FOLDERS.items():
        assert setuptools["package-dir"][package] == folder and package in setuptools["packages"]
        patterns = setuptools["package-data"][package]
        files = [p.name for p in (REPO / folder).iterdir() if p.is_file()]
        assert files and all(any(fnmatch.fnmatch(name, pattern) for pattern in patterns) for name in files)
    assert shipped_names("genotypes") == [name for name in SHIPPED if name.startswith("genotypes/")]


def source_modules() -> dict[str, str]:
    """{dotted package: folder} of every Python package in the folders pyproject maps (a folder with an
    __init__.py), as setuptools names them: the deepest mapping that covers the folder, plus the rest."""
    mapped = PYPROJECT["tool"]["setuptools"]["package-dir"]
    out = {}
    for package, folder in mapped.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO).as_posix()
            owner = max((f for f in mapped.values() if rel == f or rel.startswith(f + "/")), key=len)
            if owner == folder:
                tail = rel[len(folder):].strip("/")
                out[f"{package}.{tail.replace('/', '.')}" if tail else package] = rel
    return out


def test_every_python_package_of_the_tree_is_listed_for_the_wheel() -> None:
    """pyproject lists packages by hand (the folder mapping needs it); a sub-package missing there is missing
    from the wheel (autobert_zero.train.retrain was, so `abz retrain` failed when installed from a wheel)."""
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = source_modules()
    assert "autobert_zero.train.retrain" in found
    assert sorted(set(found) - listed) == []


def test_shipped_names_resolve_to_the_package_data_from_any_folder(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in SHIPPED:
        for spelling in (name, f"./{name}"):
            path = resolve_shipped(spelling)
            assert path.is_absolute() and path == shipped_file(spelling), spelling
            assert path.read_bytes() == (REPO / name).read_bytes()
    for other in ("genotypes/nope.abz", "elsewhere/bert.abz", "bert.abz", "genotypes"):
        assert shipped_file(other) is None
        assert resolve_shipped(other) == Path(other)  # returned as given: the caller reports it missing


def test_a_file_in_the_working_directory_wins_over_the_shipped_copy(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "genotypes").mkdir()
    (tmp_path / "genotypes" / "bert.abz").write_text("mine\n", encoding="utf-8")
    assert resolve_shipped("genotypes/bert.abz").read_text(encoding="utf-8") == "mine\n"
    assert resolve_shipped(REPO / "genotypes" / "bert.abz") == REPO / "genotypes" / "bert.abz"


def test_missing_matplotlib_names_the_report_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from autobert_zero.plotting import pyplot

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    with pytest.raises(ConfigError, match=r"autobert-zero\[report\]"):
        pyplot()


def test_missing_tensorboard_names_the_extra_before_anything_is_written(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from autobert_zero.train.run_log import RunLog

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # find_spec("tensorboard") is now None
    for rank0 in (True, False):  # every rank stops, not rank 0 alone
        with pytest.raises(ConfigError, match=r"autobert-zero\[tensorboard\]"):
            RunLog(tmp_path / "run", enabled=rank0, tensorboard=True)
    assert not (tmp_path / "run").exists()
    with RunLog(tmp_path / "run", enabled=True, tensorboard=False) as log:  # no TensorBoard asked: no check
        log.write({"step": 1, "loss": 1.0})


def test_the_extras_match_their_use() -> None:
    project = PYPROJECT["project"]
    core = " ".join(project["dependencies"])
    extras = project["optional-dependencies"]
    assert "matplotlib" not in core and "tensorboard" not in core and "accelerate" not in core
    assert [r.split(">")[0] for r in extras["report"]] == ["matplotlib"]
    assert [r.split(">")[0] for r in extras["tensorboard"]] == ["tensorboard"]
    assert set(extras["report"]) | set(extras["tensorboard"]) <= set(extras["dev"])
    unbounded = [r for r in project["dependencies"] if "<" not in r]
    assert unbounded == [], "every dependency has an upper bound"


# ---------------------------------------------------------------------------------------------------
# The wheel


def source_copy(dest: Path) -> Path:
    """What a wheel is built from, copied to `dest` (so the build leaves no build/ folder in the tree): the
    project file, the README and the folders pyproject maps to packages."""
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    folders = {folder.split("/")[0] for folder in PYPROJECT["tool"]["setuptools"]["package-dir"].values()}
    for folder in sorted(folders):
        shutil.copytree(REPO / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def build_wheel(source: Path, work: Path) -> Path:
    """A wheel of the project at `source` (built from a copy in `work`, with build isolation)."""
    copy = source_copy(work / "src") if source == REPO else source
    dist = work / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(copy)],
                   check=True, capture_output=True, text=True, timeout=600)
    (wheel,) = dist.glob("autobert_zero-*.whl")
    return wheel


def clean_env(**extra: str) -> dict[str, str]:
    """The environment minus anything that would put the source tree or a launcher's group in a child."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", *LAUNCHER_VARS)}
    return {**env, **extra}


def test_the_wheel_holds_the_package_data_and_reads_it_outside_the_tree(tmp_path: Path) -> None:
    """Without a new venv (fast): the wheel's files unpacked on PYTHONPATH, imported from an empty folder."""
    wheel = build_wheel(REPO, tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    for name in SHIPPED:
        assert f"autobert_zero/{name}" in names, name
    assert "autobert_zero/grammar/genotype.lark" in names
    for package, folder in source_modules().items():
        for module in (REPO / folder).glob("*.py"):
            assert f"{package.replace('.', '/')}/{module.name}" in names, module
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    outside = tmp_path / "outside"
    outside.mkdir()
    code = """
import json
import autobert_zero, autobert_zero.compiler
from autobert_zero.config.load import load_config
from autobert_zero.config.paths import resolve_shipped
from autobert_zero.grammar import load_genotype
cfg = load_config(resolve_shipped("configs/tiny.yaml"))
print(json.dumps({"modules": [autobert_zero.__file__, autobert_zero.compiler.__file__],
                  "config": str(resolve_shipped("configs/tiny.yaml")), "genotype": str(resolve_shipped(cfg.genotype)),
                  "layers": load_genotype(resolve_shipped(cfg.genotype)).num_layers}))
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=outside, env=clean_env(PYTHONPATH=str(site)),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.splitlines()[-1])
    for path in (*found["modules"], found["config"], found["genotype"]):
        assert Path(path).is_relative_to(site), path  # the wheel's copy, not the source tree's
    assert found["layers"] == 12


def quick_config(path: Path) -> Path:
    """configs/tiny.yaml at the smallest settings that still run the quick start's supernet and search: 2
    supernet steps, 3 candidates of 1 step each, 1 adaptation step. Genotype paths stay relative
    (`genotypes/bert.abz`): from the folder the commands run in, they name the shipped copies."""
    data: dict[str, Any] = yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text(encoding="utf-8"))
    data["pretrain"].update(max_steps=2, warmup_steps=0, checkpoint_every=2)
    data["data"].update(eval_blocks=8, tokenizer_cache_dir="tokenizers")
    data["logging"].update(progress_bar=False, log_every=1)
    data["evaluate"].update(steps=1)
    data["search"].update(evaluations=3, population_size=2, tournament_size=2, adapt_steps=1)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def wheel_check(source: Path, work: Path) -> dict[str, float]:
    """Build a wheel of `source`, install it into a fresh venv (torch first, pinned, so pip keeps the CPU build;
    the rest from the package index), and from an empty folder run `abz check`, `abz show`, `abz compile`
    and the quick start's supernet, search and retrain on shipped names; `abz report` without the `[report]`
    extra fails cleanly. Returns the seconds each step took."""
    seconds: dict[str, float] = {}

    def timed(step: str, args: list[str], cwd: Path, expect: int = 0) -> subprocess.CompletedProcess[str]:
        start = time.monotonic()
        result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
        seconds[step] = round(time.monotonic() - start, 1)
        assert result.returncode == expect, f"{step}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        return result

    venv = work / "venv"
    bin_dir = venv / "bin"
    env = clean_env(PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", HF_HOME=str(work / "hf"),
                    HF_HUB_OFFLINE="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    start = time.monotonic()
    wheel = build_wheel(source, work)
    seconds["build wheel"] = round(time.monotonic() - start, 1)
    timed("create venv", [sys.executable, "-m", "venv", str(venv)], work)
    python = str(bin_dir / "python")
    timed("install torch", [python, "-m", "pip", "install", "-q", "torch==2.13.0"], work)
    timed("install wheel", [python, "-m", "pip", "install", "-q", str(wheel)], work)
    outside = work / "outside"
    outside.mkdir()
    where = timed("import", [python, "-c", "import autobert_zero, importlib.util; print(autobert_zero.__file__); "
                             "print(importlib.util.find_spec('accelerate') is None)"], outside)
    module, no_accelerate = where.stdout.split()
    assert Path(module).is_relative_to(venv) and no_accelerate == "True"

    abz = str(bin_dir / "abz")
    checked = timed("abz check", [abz, "check", "genotypes/bert.abz", "genotypes/autobert_zero.abz"], outside)
    assert checked.stdout.count(": ok") == 2, checked.stdout
    shown = timed("abz show", [abz, "show", "genotypes/autobert_zero.abz", "--config", "configs/tiny.yaml"], outside)
    assert "conv light kernel=65" in shown.stdout, shown.stdout
    compiled = timed("abz compile", [abz, "compile", "genotypes/bert.abz", "--out", "model", "--hidden", "16",
                                     "--heads", "2", "--intermediate", "32", "--vocab-size", "50"], outside)
    assert "accelerator" not in compiled.stdout + compiled.stderr  # DeepSpeed's start-up log stays out
    assert (outside / "model" / "config.json").is_file()

    config = str(quick_config(outside / "quick.yaml"))
    timed("abz supernet", [abz, "supernet", "--config", config, "--out", "runs/quickstart/supernet"], outside)
    searched = timed("abz search", [abz, "search", "--config", config, "--supernet", "runs/quickstart/supernet",
                                    "--out", "runs/quickstart/search"], outside)
    assert "search finished: 3 candidates" in searched.stdout, searched.stdout
    history = (outside / "runs" / "quickstart" / "search" / "history.jsonl").read_text(encoding="utf-8")
    assert len(history.splitlines()) == 3
    report = timed("abz report (no [report] extra)", [abz, "report", "runs/quickstart/search"], outside, expect=1)
    assert "autobert-zero[report]" in report.stderr and "Traceback" not in report.stderr, report.stderr
    retrained = timed("abz retrain", [abz, "retrain", "runs/quickstart/search", "--config", config, "--out",
                                      "runs/quickstart/retrain", "--top", "1", "--baselines", "genotypes/bert.abz",
                                      "--lrs", "1e-3", "--glue", "--no-rescore"], outside)  # 8 held-out blocks
    assert "found-1" in retrained.stdout and "bert" in retrained.stdout, retrained.stdout
    assert (outside / "runs" / "quickstart" / "retrain" / "results.json").is_file()
    return seconds


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_runs_the_quick_start(tmp_path: Path) -> None:
    seconds = wheel_check(REPO, tmp_path)
    print("wheel check, seconds per step:", json.dumps(seconds))

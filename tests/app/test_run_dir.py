"""Output folders: nothing lost, one run at a time, outputs follow the umask."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autobert_zero.cli import main
from autobert_zero.errors import ConfigError, TrainingError
from autobert_zero.io import atomic_directory, atomic_write_text, is_temporary
from autobert_zero.run_dir import HOLDER_FILE, OWN_FILES, open_run_dir
from tests.support.paths import GENOTYPES, REPO
from tests.support.training import subprocess_env

TINY = ["--hidden", "32", "--heads", "2", "--intermediate", "64", "--vocab-size", "64"]


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_folder(folder: Path) -> Path:
    """A folder that looks like a finished run plus a file of the user's."""
    (folder / "checkpoints" / "step-00000004").mkdir(parents=True)
    (folder / "checkpoints" / "step-00000004" / "mp_rank_00_model_states.pt").write_bytes(b"weights")
    (folder / "final").mkdir()
    (folder / "final" / "model.safetensors").write_bytes(b"final")
    (folder / "metrics.jsonl").write_text('{"step": 4, "loss": 1.0}\n')
    (folder / "config.json").write_text("{}")
    (folder / "my-notes.txt").write_text("mine")
    return folder


def test_compile_refuses_an_existing_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run_folder(tmp_path / "run")
    before = files(out)
    assert main(["compile", str(GENOTYPES / "bert.abz"), "--out", str(out), *TINY]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "is not empty (it holds checkpoints, config.json, final, metrics.jsonl, my-notes.txt)" in err
    assert "--force" in err and "--resume" not in err  # compile has no --resume
    assert files(out) == before


def test_compile_force_replaces_only_its_own_files(tmp_path: Path) -> None:
    out = run_folder(tmp_path / "run")
    before = files(out)
    assert main(["compile", str(GENOTYPES / "bert.abz"), "--out", str(out), "--force", *TINY]) == 0
    after = files(out)
    assert after["config.json"] != before["config.json"] and "model.safetensors" in after
    kept = {name: data for name, data in before.items() if name != "config.json"}
    assert {name: after[name] for name in kept} == kept
    assert not [p for p in out.rglob("*") if "abz-save" in p.name or is_temporary(p.name)]  # no staging left


def test_compile_out_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["compile", str(GENOTYPES / "bert.abz"), "--out", ".", *TINY]) == 0  # an empty folder is fine
    assert (tmp_path / "model.safetensors").is_file()
    assert main(["compile", str(GENOTYPES / "bert.abz"), "--out", ".", *TINY]) == 1  # now it is not empty
    assert "internal error" not in capsys.readouterr().err


def test_a_file_in_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("a file")
    with pytest.raises(ConfigError, match=r"exists and is not a folder"), open_run_dir(tmp_path / "out", "abz x"):
        pass


PRETRAIN_OUTPUTS = ("checkpoints", "final", "metrics.jsonl")


def test_force_removes_only_the_files_the_command_wrote(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with open_run_dir(out, "abz pretrain", outputs=PRETRAIN_OUTPUTS) as run:
        (run.path / "checkpoints" / "step-1").mkdir(parents=True)
        (run.path / "checkpoints" / "step-1" / "model.pt").write_bytes(b"weights")
        (run.path / "final").mkdir()
        (run.path / "final" / "model.safetensors").write_bytes(b"final")
        (run.path / "metrics.jsonl").write_text("{}\n")
    (out / "final" / "notes.txt").write_text("mine")  # the user's files, inside and beside the outputs
    (out / "my-notes.txt").write_text("mine")
    with open_run_dir(out, "abz pretrain", force=True, outputs=PRETRAIN_OUTPUTS):
        assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.name not in OWN_FILES) == [
            "final", "final/notes.txt", "my-notes.txt"]


def test_force_replaces_an_unrecorded_output_file_but_no_folder(tmp_path: Path) -> None:
    out = run_folder(tmp_path / "run")  # made by hand (or before manifests): no run recorded its files
    before = files(out)
    with open_run_dir(out, "abz pretrain", force=True, outputs=PRETRAIN_OUTPUTS):
        pass
    after = {name: data for name, data in files(out).items() if name not in OWN_FILES}
    assert after == {name: data for name, data in before.items() if name != "metrics.jsonl"}


def test_force_refuses_a_folder_where_another_command_wrote_an_output(tmp_path: Path) -> None:
    out = tmp_path / "supernet"
    with open_run_dir(out, "abz supernet", outputs=("final", "summary.json")) as run:
        (run.path / "summary.json").write_text('{"steps": 4}')
    with pytest.raises(ConfigError, match=r"summary.json \(abz supernet\).*--force replaces only abz search's"), \
            open_run_dir(out, "abz search", force=True, outputs=("state.json", "summary.json", "plots")):
        pass
    assert (out / "summary.json").read_text() == '{"steps": 4}'


def test_temporaries_of_a_killed_writer_are_removed_under_the_lock(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with open_run_dir(out, "abz search") as run:
        (run.path / "state.json").write_text("{}")
    stale = [out / ".state.json.k2j4_x9a.tmp", out / ".final.0a1b2c3d.tmp" / "model.safetensors",
             out / "checkpoints" / ".latest.zz99yy88.tmp"]
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("half")
    (out / "my.notes.tmp").write_text("mine")  # not a temporary name of autobert_zero.io
    with open_run_dir(out, "abz resume", resume=True):
        assert not [p for p in out.rglob("*") if is_temporary(p.name)]
    assert (out / "my.notes.tmp").read_text() == "mine" and (out / "state.json").read_text() == "{}"


def test_the_holder_is_named_by_its_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["abz", "search", "--config", "c.yaml", "--out", str(tmp_path / "out")])
    with open_run_dir(tmp_path / "out", "abz search"), pytest.raises(TrainingError) as info, open_run_dir(
            tmp_path / "out", "abz search"):
        pass
    assert str(info.value).count("search") == 1 and "(abz search)" in str(info.value)


def test_a_failed_save_names_the_users_path_and_keeps_the_previous_files(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "model"
    (out / "model.safetensors").mkdir(parents=True)  # a folder where the weights file goes
    (out / "model.safetensors" / "mine").write_text("mine")
    (out / "config.json").write_text("{}")
    assert main(["compile", str(GENOTYPES / "bert.abz"), "--out", str(out), "--force", *TINY]) == 1
    err = "".join(capsys.readouterr().err.split())  # the message is wrapped
    assert f"({out / 'model.safetensors'})" in err and "abz-save" not in err and ".tmp" not in err
    assert (out / "config.json").read_text() == "{}" and (out / "model.safetensors" / "mine").read_text() == "mine"
    assert not [p for p in out.rglob("*") if "abz-save" in p.name or is_temporary(p.name)]


def test_second_run_in_the_same_process_is_refused_naming_the_holder(tmp_path: Path) -> None:
    holder = rf"is in use by pid {os.getpid()} on {socket.gethostname()} \(abz pretrain"
    with open_run_dir(tmp_path / "out", "abz pretrain"), pytest.raises(TrainingError, match=holder), open_run_dir(
            tmp_path / "out", "abz pretrain"):
        pass
    assert not (tmp_path / "out" / HOLDER_FILE).exists()
    with open_run_dir(tmp_path / "out", "abz pretrain"):  # released: the folder is usable again
        pass


HOLDER = textwrap.dedent("""
    import sys, time
    from autobert_zero.run_dir import open_run_dir
    with open_run_dir(sys.argv[1], "abz pretrain"):
        (__import__("pathlib").Path(sys.argv[1]) / "started").write_text("1")
        time.sleep(120)
""")


def start_holder(script: str, out: Path, *args: str) -> subprocess.Popen[str]:
    """`script` run in another process that holds `out`'s lock; returned once it has written `out/started`."""
    proc = subprocess.Popen([sys.executable, "-c", script, str(out), *args], env=subprocess_env(), cwd=REPO,
                            text=True)
    deadline = time.monotonic() + 60
    while not (out / "started").exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    return proc


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = start_holder(HOLDER, tmp_path / "out")
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_lock_held_by_another_process_then_released_when_it_is_killed(
        tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    for resume in (False, True):  # named before "not empty" or "nothing to resume" is said
        with pytest.raises(TrainingError, match=rf"in use by pid {holder.pid} on "), open_run_dir(
                tmp_path / "out", "abz pretrain", resume=resume):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with open_run_dir(tmp_path / "out", "abz pretrain", resume=True) as run:  # the OS released the dead lock
        assert run.path == tmp_path / "out"


UNNAMED_HOLDER = textwrap.dedent("""
    import pathlib, sys, time
    from filelock import FileLock
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out / ".abz.lock")):  # a run between taking the lock and naming itself (or ending)
        (out / "started").write_text("1")
        time.sleep(float(sys.argv[2]))
""")


@pytest.mark.parametrize("hold_s, refused", [(1.0, False), (30.0, True)])
def test_a_lock_held_without_a_holder_name_is_waited_for_briefly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  hold_s: float, refused: bool) -> None:
    """A held lock with no holder file is a run starting or ending: taken once it is let go within
    `HANDOVER_S` (a resume started the moment the run before it returned), refused after it otherwise."""
    import autobert_zero.run_dir as run_dir

    monkeypatch.setattr(run_dir, "HANDOVER_S", 5.0)
    out = tmp_path / "out"
    proc = start_holder(UNNAMED_HOLDER, out, str(hold_s))
    try:
        if refused:
            with pytest.raises(TrainingError, match="its pid file is not readable"), open_run_dir(
                    out, "abz pretrain", resume=True):
                pass
        else:
            with open_run_dir(out, "abz pretrain", resume=True) as run:
                assert run.path == out and proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@pytest.mark.parametrize("mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700),
                                                       (0o002, 0o664, 0o775)])
def test_outputs_follow_the_umask(tmp_path: Path, mask: int, file_mode: int, dir_mode: int) -> None:
    old = os.umask(mask)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
        with atomic_directory(tmp_path / "folder") as tmp:
            (tmp / "inside.txt").write_text("x")
        assert main(["compile", str(GENOTYPES / "bert.abz"), "--out", str(tmp_path / "model"), *TINY]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == file_mode
    assert (tmp_path / "folder").stat().st_mode & 0o777 == dir_mode
    assert (tmp_path / "model" / "model.safetensors").stat().st_mode & 0o777 == file_mode
    assert (tmp_path / "model").stat().st_mode & 0o777 == dir_mode


def test_write_errors_name_the_users_path_not_a_temporary_one(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "drawing.svg"
    target.mkdir()  # a folder where the file should go
    with pytest.raises(OSError) as info:
        atomic_write_text(target, "<svg/>")
    assert info.value.filename == str(target) and ".tmp" not in str(info.value)
    assert main(["show", str(GENOTYPES / "bert.abz"), "--svg", str(target), *TINY]) == 1
    err = capsys.readouterr().err
    assert f"({target})" in err and ".tmp" not in err


def test_a_deeply_nested_summary_is_not_a_finished_run(tmp_path: Path) -> None:
    """A damaged `summary.json` (nested past the JSON bound) reads as "not finished", not as an internal error."""
    from autobert_zero.run_dir import RunDir

    (tmp_path / "summary.json").write_text("[" * 50_000 + "]" * 50_000, encoding="utf-8")
    assert RunDir(tmp_path, "abz pretrain").finished() is None
    (tmp_path / "summary.json").write_text('{"final_loss": 1.5}', encoding="utf-8")
    assert RunDir(tmp_path, "abz pretrain").finished() == {"final_loss": 1.5}

"""Every `abz` command against a corpus of bad inputs: a clean error, never "internal error", nothing lost.

Each case runs the real command line in-process (`autobert_zero.cli.main`) from inside a folder of inputs
(genotypes, configs, corpora, GLUE folders, model folders, run folders with damaged checkpoints) and asserts:
- the exit code is 1 (user error) or 2 (invalid genotype) as expected, and stderr holds no "internal error";
- nothing outside the case's output folder changed (every input file is byte-identical, nothing new).
The classes of bad input: genotypes, YAML configs and their values, sizes,
corpora, GLUE files, `--init` folders, output folders, damaged or foreign checkpoints, search folders.
A last test runs two real `abz pretrain` processes into one folder at once and then SIGKILLs the first.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from autobert_zero.cli import main
from autobert_zero.run_dir import OWN_FILES
from autobert_zero.train import checkpoint
from autobert_zero.train.pretrain import pretrain
from tests.support.payloads import Payload, damage
from tests.support.training import VANILLA, subprocess_env, tiny_config, tiny_dict

CORE = "matmul(softmax(scale(matmul(Q, transpose(K)))), V)"


def chain(n: int) -> str:
    lines = ["a0 = neg(Q)", *(f"a{i} = neg(a{i - 1})" for i in range(1, n))]
    return "attention g {\n" + "\n".join(lines) + f"\nreturn {CORE.replace('Q,', f'a{n - 1},', 1)}\n}}\n" \
        "backbone { attention g }\n"


BAD_GENOTYPES: dict[str, str | bytes] = {
    "empty.abz": "",
    "binary.abz": b"\x00\x01\x02genotype",
    "latin1.abz": b"attention a { return neg(Q) } \xe9\n",
    "syntax.abz": "attention a { return matmul(Q K) }\nbackbone { attention a }\n",
    "unknown-op.abz": "attention a { return frobnicate(Q) }\nbackbone { attention a }\n",
    "cyrillic.abz": f"attention a {{ return {CORE} }}\nbackbone {{ \u0430ttention a }}\n",
    "chain300.abz": chain(300),
    "kernel-digits.abz": f"attention a {{ return {CORE} }}\nbackbone {{ conv kernel={'9' * 5000}\n attention a }}\n",
    "bad-shape.abz": "attention a { return matmul(Q, K) }\nbackbone { attention a }\n",
    "no-backbone.abz": f"attention a {{ return {CORE} }}\n",
}

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True))
BAD_CONFIGS: dict[str, str] = {
    "not-yaml.yaml": "model: [unclosed\n",
    "bomb.yaml": BOMB,
    "recursive.yaml": "deepspeed: &d {x: *d}\n",
    "deep.yaml": "deepspeed: " + "[" * 2000 + "]" * 2000 + "\n",
    "unknown-key.yaml": "pretrain:\n  learning_rat: 0.1\n",
    "duplicate.yaml": "seed: 1\nseed: 2\n",
    "lr-inf.yaml": "pretrain:\n  lr: .inf\n",
    "lr-nan.yaml": "finetune:\n  lr: .nan\n",
    "seed-31-digits.yaml": "seed: 1234567890123456789012345678901\n",
    "vocab-huge.yaml": "data:\n  vocab_size: 100000000000\n",
    "hidden-huge.yaml": "model:\n  hidden_size: 1000000000\n",
    "wrong-type.yaml": "model: 3\n",
    "list-top.yaml": "- a\n- b\n",
    "latin1.yaml": "seed: 1 # \udce9\n",
}

BAD_CORPORA: dict[str, str] = {
    "empty.txt": "",
    "cut.jsonl": '{"text": "a b"}\n{"text": "c\n',
    "bad.json": '{"text": "a"}\n{"text": oops}\n',
    "nokey.jsonl": '{"body": "b"}\n',
    "ragged.tsv": "text\tlabel\nhello\t1\nfoo\t1\t2\n",
    "ragged.csv": "text,label\nhello,1\nfoo\n",
}


@dataclass
class World:
    root: Path
    config: Path  # a good tiny config
    init: Path  # a good pre-trained folder (final/ of a run)


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", errors="surrogateescape")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("world")
    cfg = tiny_config(root)
    pretrain(cfg, root / "run", max_steps=8)
    config = write(root / "good.yaml", yaml.safe_dump(tiny_dict(root), sort_keys=False))
    for name, text in BAD_GENOTYPES.items():
        write(root / "genotypes" / name, text)
    for name, text in BAD_CONFIGS.items():
        write(root / "configs" / name, text)
    for name, text in BAD_CORPORA.items():
        write(root / "corpora" / name, text)
    write(root / "glue-header-only" / "SST-2" / "train.tsv", "sentence\tlabel\n")
    write(root / "glue-header-only" / "SST-2" / "dev.tsv", "sentence\tlabel\nfine\t1\n")
    write(root / "glue-ragged" / "RTE" / "train.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\n")
    write(root / "glue-ragged" / "RTE" / "dev.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n")
    write(root / "glue-good" / "SST-2" / "train.tsv", "sentence\tlabel\nfine\t1\nbad\t0\n")
    write(root / "glue-good" / "SST-2" / "dev.tsv", "sentence\tlabel\nfine\t1\nbad\t0\n")
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=5, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(root / "plain-bert")
    write(root / "plain-bert" / "vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
    assert main(["compile", cfg.genotype, "--out", str(root / "no-tokenizer"), "--hidden", "32", "--heads", "2",
                 "--intermediate", "64", "--vocab-size", "512"]) == 0  # a model folder without a tokenizer
    write(root / "a-file", "not a folder")
    write(root / "full" / "notes.txt", "the user's own file")
    for name, how in (("damaged", "truncated .pt"), ("stateless", "empty state")):
        shutil.copytree(root / "run", root / name)
        for tag in ("step-00000004", "step-00000008"):
            damage(root / name / "checkpoints" / tag, how)
    shutil.copytree(root / "run", root / "payload")
    for tag in ("step-00000004", "step-00000008"):
        torch.save({"module": Payload(root / "PAYLOAD-RAN")}, root / "payload" / "checkpoints" / tag /
                   "mp_rank_00_model_states.pt")
        checkpoint.write_manifest(root / "payload" / "checkpoints" / tag)
    write(root / "other.abz", VANILLA.replace("matmul(Q, transpose(K))", "matmul(K, transpose(Q))")
          + "backbone {\n  attention vanilla\n  attention vanilla\n}\n")
    state_files(root)
    search_files(root)
    return World(root, config, root / "run" / "final")


DEEP = "[" * 5000 + "]" * 5000


def state_files(root: Path) -> None:
    """Checkpoints edited by hand with a recomputed manifest (the manifest alone cannot catch them), a
    config with another seed, and a genotype past the layer bound."""
    for name in ("edited-step", "deep-rng"):
        shutil.copytree(root / "run", root / name)
        for tag in ("step-00000004", "step-00000008"):
            folder = root / name / "checkpoints" / tag
            if name == "edited-step":  # valid JSON, a step the folder is not
                state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
                write(folder / "trainer_state.json", json.dumps({**state, "step": 999}))
            else:
                write(folder / "rng-rank0.json", DEEP)
            checkpoint.write_manifest(folder)
    shutil.copytree(root / "run" / "final", root / "deep-config")  # an --init folder whose config.json nests
    write(root / "deep-config" / "config.json", DEEP)
    write(root / "seed7.yaml", yaml.safe_dump(tiny_dict(root, seed=7), sort_keys=False))
    write(root / "layers300.abz", f"attention a {{ return {CORE} }}\nbackbone {{\n" + "  attention a\n" * 300 + "}\n")


def search_files(root: Path) -> None:
    """A finished synthetic search, and copies of it whose files lie: a history line edited into valid JSON
    (a fitness no run gave), a state nested past the JSON bound."""
    config = write(root / "search.yaml", yaml.safe_dump(tiny_dict(root, search={
        "fitness": "synthetic", "evaluations": 8, "population_size": 4, "tournament_size": 2, "round_size": 2}),
        sort_keys=False))
    assert main(["search", "--config", str(config), "--out", str(root / "search")]) == 0
    for name in ("search-edited", "search-deep"):
        shutil.copytree(root / "search", root / name)
        (root / name / "summary.json").unlink()  # so that `abz resume` reads the state
    history = (root / "search-edited" / "history.jsonl").read_text(encoding="utf-8").splitlines()
    history[1] = json.dumps({**json.loads(history[1]), "fitness": 1e9})
    write(root / "search-edited" / "history.jsonl", "\n".join(history) + "\n")
    write(root / "search-deep" / "state.json", DEEP)


Args = Callable[[World], list[str]]


def cases() -> list[tuple[str, Args, set[int]]]:
    """(id, argv builder, allowed exit codes) for every command and class of bad input."""
    out: list[tuple[str, Args, set[int]]] = []

    def add(name: str, build: Args, codes: set[int]) -> None:
        out.append((name, build, codes))

    for g in BAD_GENOTYPES:
        def gpath(w: World, g: str = g) -> str:
            return str(w.root / "genotypes" / g)
        add(f"check-{g}", lambda w, p=gpath: ["check", p(w)], {2})
        add(f"show-{g}", lambda w, p=gpath: ["show", p(w)], {2})
        add(f"compile-{g}", lambda w, p=gpath: ["compile", p(w), "--out", str(w.root / "out")], {2})
        add(f"export-{g}", lambda w, p=gpath: ["export", p(w), "--out", str(w.root / "out")], {2})
        add(f"pretrain-{g}", lambda w, p=gpath: ["pretrain", "--config", str(w.config), "--genotype", p(w),
                                                 "--out", str(w.root / "out")], {2})
    add("check-missing", lambda w: ["check", str(w.root / "missing.abz")], {2})
    add("pretrain-missing-genotype", lambda w: ["pretrain", "--config", str(w.config), "--genotype",
                                                str(w.root / "missing.abz"), "--out", str(w.root / "out")], {2})

    for c in BAD_CONFIGS:
        def cpath(w: World, c: str = c) -> str:
            return str(w.root / "configs" / c)
        add(f"pretrain-{c}", lambda w, p=cpath: ["pretrain", "--config", p(w), "--out", str(w.root / "out")], {1})
        add(f"finetune-{c}", lambda w, p=cpath: ["finetune", "--config", p(w), "--task", "sst2", "--data-dir",
                                                 str(w.root / "glue-good"), "--init", str(w.init),
                                                 "--out", str(w.root / "out")], {1})
        add(f"show-{c}", lambda w, p=cpath: ["show", str(w.root / "other.abz"), "--config", p(w)], {1})
        add(f"compile-{c}", lambda w, p=cpath: ["compile", str(w.root / "other.abz"), "--config", p(w),
                                                "--out", str(w.root / "out")], {1})
        add(f"supernet-{c}", lambda w, p=cpath: ["supernet", "--config", p(w), "--out", str(w.root / "out")], {1})
        add(f"search-{c}", lambda w, p=cpath: ["search", "--config", p(w), "--out", str(w.root / "out")], {1})
        add(f"evaluate-{c}", lambda w, p=cpath: ["evaluate", "--config", p(w), "--estimator", "scratch",
                                                 str(w.root / "other.abz")], {1})
    add("pretrain-missing-config", lambda w: ["pretrain", "--config", str(w.root / "nope.yaml"), "--out",
                                              str(w.root / "out")], {1})

    other = "other.abz"
    for flags in (["--vocab-size", "0"], ["--vocab-size", "10000000000"], ["--hidden", "0"],
                  ["--hidden", "1000000000"], ["--heads", "0"], ["--intermediate", "-5"], ["--hidden", "30"]):
        tag = "".join(flags)
        add(f"show{tag}", lambda w, f=flags: ["show", str(w.root / other), *f], {1})
        add(f"compile{tag}", lambda w, f=flags: ["compile", str(w.root / other), "--out", str(w.root / "out"),
                                                 *f], {1})
    add("show-seq-len-0", lambda w: ["show", str(w.root / other), "--seq-len", "0"], {1})
    add("compile-seed-negative", lambda w: ["compile", str(w.root / other), "--out", str(w.root / "out"),
                                            "--seed", "-1"], {1})

    for name in [*BAD_CORPORA, "missing.txt"]:
        def corpus(w: World, name: str = name) -> str:
            return str(w.root / "corpora" / name)
        add(f"pretrain-corpus-{name}", lambda w, p=corpus: ["pretrain", "--config", str(w.config), "--corpus", p(w),
                                                            "--out", str(w.root / "out")], {1})

    def finetune(data: str, init: Callable[[World], Path], task: str = "sst2") -> Args:
        return lambda w: ["finetune", "--config", str(w.config), "--task", task, "--data-dir", str(w.root / data),
                          "--init", str(init(w)), "--out", str(w.root / "out")]

    add("finetune-header-only-train", finetune("glue-header-only", lambda w: w.init), {1})
    add("finetune-ragged", finetune("glue-ragged", lambda w: w.init, "rte"), {1})
    add("finetune-missing-task-folder", finetune("glue-good", lambda w: w.init, "rte"), {1})
    add("finetune-unknown-task", finetune("glue-good", lambda w: w.init, "sst5"), {1})
    add("finetune-init-missing", finetune("glue-good", lambda w: w.root / "nothing"), {1})
    add("finetune-init-plain-bert", finetune("glue-good", lambda w: w.root / "plain-bert"), {1})
    add("finetune-init-no-tokenizer", finetune("glue-good", lambda w: w.root / "no-tokenizer"), {1})
    add("finetune-init-is-a-file", finetune("glue-good", lambda w: w.root / "a-file"), {1})
    add("finetune-init-run-folder", finetune("glue-good", lambda w: w.root / "run"), {1})
    add("finetune-init-deep-config", finetune("glue-good", lambda w: w.root / "deep-config"), {1})

    for target in ("a-file", "full"):
        add(f"compile-out-{target}", lambda w, t=target: ["compile", str(w.root / other), "--out", str(w.root / t)],
            {1})
        add(f"pretrain-out-{target}", lambda w, t=target: ["pretrain", "--config", str(w.config), "--out",
                                                           str(w.root / t)], {1})
        add(f"finetune-out-{target}", lambda w, t=target: ["finetune", "--config", str(w.config), "--task", "sst2",
                                                           "--data-dir", str(w.root / "glue-good"), "--init",
                                                           str(w.init), "--out", str(w.root / t)], {1})
        add(f"supernet-out-{target}", lambda w, t=target: ["supernet", "--config", str(w.config), "--out",
                                                           str(w.root / t)], {1})
    add("pretrain-over-a-run", lambda w: ["pretrain", "--config", str(w.config), "--out", str(w.root / "run")], {1})

    for run in ("damaged", "stateless", "payload", "full", "missing-run"):
        add(f"pretrain-resume-{run}", lambda w, r=run: ["pretrain", "--config", str(w.config), "--out",
                                                        str(w.root / r), "--resume"], {1})
    add("pretrain-resume-other-genotype", lambda w: ["pretrain", "--config", str(w.config), "--genotype",
                                                     str(w.root / "other.abz"), "--out", str(w.root / "run"),
                                                     "--resume"], {1})

    for command in ("resume", "report"):
        for target in ("missing-run", "a-file", "full"):
            add(f"{command}-{target}", lambda w, c=command, t=target: [c, str(w.root / t)], {1})
    add("report-pretrain-run", lambda w: ["report", str(w.root / "run")], {1})
    add("export-not-a-search", lambda w: ["export", str(w.root / "full"), "--out", str(w.root / "out")], {1, 2})
    add("audit-missing-supernet", lambda w: ["audit", "--supernet", str(w.root / "missing-run"), "--candidates", "3",
                                             "--out", str(w.root / "out")], {1})
    add("audit-supernet-not-a-supernet", lambda w: ["audit", "--supernet", str(w.root / "run"), "--candidates",
                                                    "3", "--out", str(w.root / "out")], {1})
    add("evaluate-missing-supernet", lambda w: ["evaluate", "--supernet", str(w.root / "missing-run"),
                                                str(w.root / "other.abz")], {1})

    # state files that lie (edited into valid JSON, nested past the bound), resumes under another identity
    for run in ("edited-step", "deep-rng"):
        add(f"pretrain-resume-{run}", lambda w, r=run: ["pretrain", "--config", str(w.config), "--out",
                                                        str(w.root / r), "--resume"], {1})
    add("pretrain-resume-other-seed", lambda w: ["pretrain", "--config", str(w.root / "seed7.yaml"), "--out",
                                                 str(w.root / "run"), "--resume"], {1})
    for search in ("search-edited", "search-deep"):
        add(f"resume-{search}", lambda w, r=search: ["resume", str(w.root / r)], {1})
        add(f"report-{search}", lambda w, r=search: ["report", str(w.root / r)], {1})
        add(f"export-{search}", lambda w, r=search: ["export", str(w.root / r), "--top", "2", "--no-hf", "--out",
                                                     str(w.root / "out")], {1})
    # retrain: not a search, a search with lying files, no results to resume, a baseline that does not parse,
    # --top beyond the scored candidates
    retrain = ["--config", "{config}", "--out", "{out}", "--no-rescore", "--glue", "--lrs", "1e-3"]

    def retrain_args(w: World, search: str, *extra: str) -> list[str]:
        words = [part.format(config=w.config, out=w.root / "out") for part in retrain]
        return ["retrain", str(w.root / search), *words, *extra]

    for target in ("missing-run", "a-file", "full", "run", "search-edited", "search-deep"):
        add(f"retrain-{target}", lambda w, t=target: retrain_args(w, t), {1})
    add("retrain-top-huge", lambda w: retrain_args(w, "search", "--top", "1000"), {1})
    add("retrain-bad-baseline", lambda w: retrain_args(w, "search", "--baselines", str(w.root / "genotypes" /
                                                                                        "latin1.abz")), {2})
    add("retrain-resume-nothing", lambda w: retrain_args(w, "search", "--resume"), {1})
    add("retrain-seeds-without-eval-corpus", lambda w: retrain_args(w, "search", "--seeds", "3"), {1})
    # unbounded work: refused before anything is allocated
    add("check-layers300", lambda w: ["check", str(w.root / "layers300.abz")], {2})
    add("export-top-huge", lambda w: ["export", str(w.root / "search"), "--top", "100000000", "--untrained",
                                      "--out", str(w.root / "out")], {1})
    add("export-vocab-huge", lambda w: ["export", str(w.root / "search"), "--top", "1", "--untrained", "--vocab-size",
                                        "100000000", "--out", str(w.root / "out")], {1})
    add("audit-candidates-huge", lambda w: ["audit", "--supernet", str(w.root / "run"), "--candidates",
                                            "1000000000", "--out", str(w.root / "out")], {1})
    add("evaluate-steps-negative", lambda w: ["evaluate", "--config", str(w.config), "--estimator", "scratch",
                                              "--steps", "-1", str(w.root / "other.abz")], {1})
    return out


def snapshot(root: Path, skip: Path) -> dict[str, bytes]:
    """Every file under `root` but those in `skip` and the (empty) lock files `open_run_dir` leaves."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and skip not in p.parents and p.name not in OWN_FILES}


CASES = cases()


@pytest.mark.parametrize("name, build, codes", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_a_clean_error_and_changes_nothing_else(
        world: World, name: str, build: Args, codes: set[int], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(world.root)
    argv = build(world)
    out = world.root / "out"
    before = snapshot(world.root, out)
    code = main(argv)
    captured = capsys.readouterr()
    assert "internal error" not in captured.err and "Traceback" not in captured.err, captured.err
    assert code in codes, f"exit {code}; stderr: {captured.err[-1500:]}"
    assert captured.err.strip() or captured.out.strip()  # said something
    after = snapshot(world.root, out)
    assert after == before, sorted(set(after) ^ set(before)) or [k for k in after if after[k] != before[k]]
    assert not (world.root / "PAYLOAD-RAN").exists()
    shutil.rmtree(out, ignore_errors=True)


def test_every_command_is_covered() -> None:
    from autobert_zero.cli import commands

    covered = {name.split("-")[0] for name, _, _ in CASES}
    assert set(commands()) <= covered, set(commands()) - covered


def test_two_pretrain_processes_into_one_folder_then_kill(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The second run is refused naming the first (pid), the first is not disturbed; after the
    first is SIGKILLed its lock is gone and `--resume` continues from its last checkpoint."""
    config = write(tmp_path / "long.yaml", yaml.safe_dump(tiny_dict(
        tmp_path, pretrain={"max_steps": 100000, "checkpoint_every": 2, "warmup_steps": 2}), sort_keys=False))
    out = tmp_path / "out"
    first = subprocess.Popen([sys.executable, "-m", "autobert_zero.cli", "pretrain", "--config", str(config),
                              "--out", str(out)], env=subprocess_env(), cwd=tmp_path, text=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while checkpoint.read_latest(out / "checkpoints") is None:
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.2)
        for extra in ([], ["--resume"]):  # a fresh run and a resume, each refused at once
            assert main(["pretrain", "--config", str(config), "--out", str(out), *extra]) == 1
            assert f"in use by pid {first.pid}" in " ".join(capsys.readouterr().err.split())
        assert first.poll() is None  # undisturbed
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    lines = (out / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line)["step"] for line in lines[:-1]]  # the last line may be cut short by the kill
    assert steps == list(range(1, len(steps) + 1))  # one run's lines, no step twice
    latest = checkpoint.read_latest(out / "checkpoints")
    assert latest is not None
    assert main(["pretrain", "--config", str(config), "--out", str(out), "--resume", "--max-steps",
                 str(int(latest[5:]) + 2)]) == 0, capsys.readouterr().err[-2000:]
    assert os.path.isdir(out / "final")

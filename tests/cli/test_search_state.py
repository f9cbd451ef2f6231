"""The search state as `abz resume`, `abz report` and `abz export` read it (issue #18): one run identity (the
whole resolved config, the supernet by its weights, the seed genotypes' texts) checked on resume with the
changed keys named; every file checked (schema, bounded depth, the history against the state's digest)
before anything is changed; a history without a state refused; the kill's leftover lines cut."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from autobert_zero.config.load import config_from_dict, parse_yaml
from autobert_zero.errors import SearchError
from autobert_zero.evolve import Search, StateStore, SyntheticFitness
from autobert_zero.evolve.priority import STREAMS
from autobert_zero.evolve.settings import SearchSettings
from autobert_zero.evolve.state import supernet_identity
from autobert_zero.grammar import default_language
from tests.support.paths import FIXTURES, GENOTYPES, REPO
from tests.support.training import subprocess_env, write_genotype

LEGACY_SUPERNET = FIXTURES / "legacy-3028dac" / "supernet"


def abz_process(*args: object) -> subprocess.CompletedProcess[str]:
    """`abz` in a process of its own (for runs that load torch)."""
    return subprocess.run([sys.executable, "-m", "autobert_zero.cli", *map(str, args)], cwd=REPO, text=True,
                          capture_output=True, env=subprocess_env(), timeout=600)


def search_yaml(folder: Path, **search: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = {"genotype": str(write_genotype(folder, layers=4)), "seed": 0, "logging": {"progress_bar": False},
            "search": {"evaluations": 24, "population_size": 6, "tournament_size": 3, "round_size": 2,
                       "fitness": "synthetic", **search}}
    path = folder / "search.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture()
def finished(tmp_path: Path, abz: Any) -> Path:
    """A finished synthetic search (its summary.json removed where a test resumes it)."""
    done = abz("search", "--config", search_yaml(tmp_path / "cfg"), "--out", tmp_path / "run")
    assert done.code == 0, done.err
    return tmp_path / "run"


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}


def rewrite_state(folder: Path, **changes: Any) -> None:
    """Change keys of state.json's body and give it a matching sha256 (a state that is well-formed JSON
    with a valid hash, but not what a search writes)."""
    path = folder / "state.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    document["body"].update(changes)
    document["sha256"] = hashlib.sha256(json.dumps(document["body"], sort_keys=True).encode()).hexdigest()
    path.write_text(json.dumps(document), encoding="utf-8")


# --- item 3: a history with no state; the kill's leftovers past the first state ------------------------------


def test_a_history_without_a_state_is_refused_and_left_as_it_is(finished: Path, tmp_path: Path, abz: Any) -> None:
    orphan = tmp_path / "orphan"
    orphan.mkdir()
    shutil.copy(finished / "config.yaml", orphan / "config.yaml")
    first = (finished / "history.jsonl").read_bytes().split(b"\n")[0] + b"\n"
    (orphan / "history.jsonl").write_bytes(first)
    before = files(orphan)
    refused = abz("resume", orphan)
    assert refused.code == 1 and "history.jsonl holds 1 line(s) but there is no state.json" in refused.err
    assert files(orphan) == before  # neither appended to nor cut
    config = config_from_dict(parse_yaml((orphan / "config.yaml").read_text(), "config.yaml")).search
    search = Search(config, default_language(), SyntheticFitness(0), seed=0, num_layers=4, store=StateStore(orphan))
    with pytest.raises(SearchError, match=r"no state\.json"):  # the store refuses it, whoever writes
        search.run()
    assert files(orphan) == before


def test_a_kill_after_the_first_history_line_resumes_without_the_seed_files(tmp_path: Path, abz: Any) -> None:
    (tmp_path / "seeds").mkdir()
    seed = write_genotype(tmp_path / "seeds", layers=4)
    config = search_yaml(tmp_path / "cfg", seed_genotypes=[str(seed)])
    whole = abz("search", "--config", config, "--out", tmp_path / "whole")
    assert whole.code == 0, whole.err
    assert "on the final supernet" not in whole.out  # item 18: a synthetic search has no supernet
    state = json.loads((tmp_path / "whole" / "state.json").read_text())["body"]
    assert [source for source, _ in state["run"]["seeds"]] == [str(seed)]
    # what a kill between the first history line and the second state leaves: config.yaml, the first state
    # (written before any history line) and leftover lines past it, the last one half written
    killed = tmp_path / "killed"
    killed.mkdir()
    shutil.copy(tmp_path / "whole" / "config.yaml", killed / "config.yaml")
    cfg = config_from_dict(parse_yaml((killed / "config.yaml").read_text(), "config.yaml"))
    first = Search(cfg.search, default_language(), SyntheticFitness(0), seed=cfg.seed, num_layers=4)
    StateStore(killed, run=state["run"]).save(first.state(), [])
    lines = (tmp_path / "whole" / "history.jsonl").read_bytes().split(b"\n")
    (killed / "history.jsonl").write_bytes(lines[0] + b"\n" + lines[1] + b"\n" + b'{"index": 2, "fit\xff')
    seed.unlink()  # the state holds the seed genotypes: a resume needs not their files
    resumed = abz("resume", killed)
    assert resumed.code == 0, resumed.err
    assert (killed / "history.jsonl").read_bytes() == (tmp_path / "whole" / "history.jsonl").read_bytes()


# --- item 5: the supernet by its weights ------------------------------------------------------------------------


def test_the_supernet_is_known_by_its_weights_and_step_not_its_path(tmp_path: Path) -> None:
    here, moved, retrained = tmp_path / "here", tmp_path / "elsewhere" / "moved", tmp_path / "retrained"
    for copy in (here, moved, retrained):
        shutil.copytree(LEGACY_SUPERNET, copy)
    weights = retrained / "final" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # other weights, same path layout
    weights.write_bytes(bytes(data))
    summary = json.loads((retrained / "summary.json").read_text())
    (retrained / "summary.json").write_text(json.dumps({**summary, "steps": 8}))
    identity = supernet_identity(here)
    assert identity == supernet_identity(moved) and identity["step"] == 4
    assert supernet_identity(retrained)["sha256"] != identity["sha256"]

    settings = dataclasses.replace(SearchSettings(), evaluations=8, population_size=4, fitness="synthetic",
                                   supernet=str(here))
    run = {"config": {"seed": 0}, "supernet": identity, "seeds": [], "data": {}}
    folder = tmp_path / "search"
    Search(settings, default_language(), SyntheticFitness(0), seed=0, num_layers=2,
           store=StateStore(folder, run=run)).run(stop_after=5)
    store = StateStore(folder)
    body, history = store.load(repair=False)
    store.check_run({**run, "supernet": supernet_identity(moved)})  # same weights, new path: accepted
    Search(dataclasses.replace(settings, supernet=str(moved)), default_language(), SyntheticFitness(0), seed=0,
           num_layers=2).restore(body, history)
    with pytest.raises(SearchError, match=r"the supernet changed since the search started: supernet weights sha256 "
                                          r"\w{12} -> \w{12}, supernet step 4 -> 8; start a new search"):
        store.check_run({**run, "supernet": supernet_identity(retrained)})


@pytest.mark.slow  # about a minute on 2 cores: the real evaluator, loading a supernet, three times
def test_resume_accepts_the_supernet_moved_and_refuses_it_retrained(tmp_path: Path) -> None:
    shutil.copytree(LEGACY_SUPERNET, tmp_path / "supernet")
    data = yaml.safe_load((FIXTURES / "legacy-3028dac" / "search" / "config.yaml").read_text())
    data["genotype"], data["logging"]["progress_bar"] = str(GENOTYPES / "bert.abz"), False
    data["data"]["tokenizer_cache_dir"] = str(tmp_path / "tokenizers")
    data["search"].update(supernet=str(tmp_path / "supernet"), evaluations=4, seed_genotypes=[])
    (tmp_path / "search.yaml").write_text(yaml.safe_dump(data))
    run = tmp_path / "run"
    assert abz_process("search", "--config", tmp_path / "search.yaml", "--out", run).returncode == 0
    (run / "summary.json").unlink()
    (tmp_path / "supernet").rename(tmp_path / "moved")
    config = run / "config.yaml"
    config.write_text(config.read_text().replace(str(tmp_path / "supernet"), str(tmp_path / "moved")))
    moved = abz_process("resume", run)
    assert moved.returncode == 0, moved.stderr
    (run / "summary.json").unlink()
    weights = tmp_path / "moved" / "final" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + bytes([weights.read_bytes()[-1] ^ 1]))
    retrained = abz_process("resume", run)
    assert retrained.returncode == 1
    assert "the supernet changed since the search started: supernet weights sha256" in " ".join(
        retrained.stderr.split())


# --- item 6: the whole resolved config ---------------------------------------------------------------------------


def test_resume_refuses_a_config_edited_anywhere_and_names_the_keys(finished: Path, abz: Any) -> None:
    (finished / "summary.json").unlink()
    path = finished / "config.yaml"
    original = path.read_text()
    data = yaml.safe_load(original)
    steps = data["evaluate"]["steps"]
    data["seed"], data["evaluate"]["steps"] = 8, steps + 1
    path.write_text(yaml.safe_dump(data))
    before = files(finished)
    refused = abz("resume", finished)
    assert refused.code == 1
    assert (f"config changed since the search started: evaluate.steps {steps} -> {steps + 1}, seed 0 -> 8; start a "
            f"new search or undo the edit") in refused.err
    assert files(finished) == before
    path.write_text(original)  # undone: the run goes on
    assert abz("resume", finished).code == 0


def test_a_key_added_since_the_search_started_is_no_change_at_its_default(finished: Path, abz: Any) -> None:
    """A search started before a config key existed (its state and config.yaml lack the key) resumes while the
    key is at its default, and is refused, naming the key, when the key is set to something else."""
    (finished / "summary.json").unlink()
    state = json.loads((finished / "state.json").read_text(encoding="utf-8"))["body"]
    run = state["run"]
    for key in ("halving_steps", "halving_eta"):
        del run["config"]["search"][key]
    rewrite_state(finished, run=run)
    path = finished / "config.yaml"
    data = yaml.safe_load(path.read_text())
    for key in ("halving_steps", "halving_eta"):
        data["search"].pop(key, None)
    path.write_text(yaml.safe_dump(data))
    data["search"]["halving_eta"] = 4
    path.write_text(yaml.safe_dump(data))
    refused = abz("resume", finished)
    assert refused.code == 1 and "search.halving_eta (absent) -> 4" in refused.err, refused.err
    del data["search"]["halving_eta"]
    path.write_text(yaml.safe_dump(data))
    resumed = abz("resume", finished)
    assert resumed.code == 0, resumed.err


# --- item 11: the history the state relies on --------------------------------------------------------------------


@pytest.mark.parametrize("fitness", ["1000000000.0", "Infinity"])
def test_an_edited_history_is_refused_by_resume_report_and_export(finished: Path, tmp_path: Path, abz: Any,
                                                                  fitness: str) -> None:
    (finished / "summary.json").unlink()
    path = finished / "history.jsonl"
    lines = path.read_text().splitlines()
    line = json.loads(lines[3])
    lines[3] = json.dumps({**line, "fitness": 0.0}, sort_keys=True).replace('"fitness": 0.0', f'"fitness": {fitness}')
    path.write_text("\n".join(lines) + "\n")
    before = files(finished)
    for command in (["report", finished], ["export", finished, "--out", tmp_path / "best", "--no-hf"],
                    ["resume", finished]):
        refused = abz(*command)
        assert refused.code == 1, (command, refused.err)
        assert "history.jsonl" in refused.err and "edited" in refused.err, refused.err
    assert files(finished) == before and not (finished / "plots").exists() and not (tmp_path / "best").exists()


# --- item 12: damaged files end in a named error, and nothing is changed before every check passed -------------


def test_damaged_lines_past_the_state_are_cut(finished: Path, abz: Any) -> None:
    (finished / "summary.json").unlink()
    good = (finished / "history.jsonl").read_bytes()
    (finished / "history.jsonl").write_bytes(good + b"\xff\xfe not text\n" + b"[" * 100_000 + b"\n{\"ind")
    assert abz("report", finished).code == 0  # a reader takes the lines the state covers, and changes nothing
    resumed = abz("resume", finished)
    assert resumed.code == 0, resumed.err
    assert (finished / "history.jsonl").read_bytes() == good


@pytest.mark.parametrize(("changes", "message"), [
    ({"population": "x"}, "key 'population' should be list"),
    ({"evaluations": "6"}, "key 'evaluations' should be int"),
    ({"priority": {"streams": {key: [3, [1, 2], None] for key in STREAMS}, "diverted": {}, "tables": {}}},
     "is not a saved random-number state"),
    ({"priority": {"streams": {}, "diverted": {}, "tables": {}}}, "streams lack"),
    ({"pending": [{"genotype": 1}]}, "pending candidate: key 'genotype' should be str"),
    ({"population": [["nobody", 1.0, 3]]}, "population member 'nobody' names history line 3"),
    ({"config": {"strategy": "op"}}, "config: missing key 'evaluations'"),
    ({"run": {"config": {}, "supernet": "here", "seeds": []}}, "run: key 'supernet' should be dict or NoneType"),
])
def test_a_state_with_a_valid_hash_but_a_malformed_body_changes_nothing(finished: Path, abz: Any,
                                                                        changes: dict[str, Any], message: str) -> None:
    (finished / "summary.json").unlink()
    rewrite_state(finished, **changes)
    with (finished / "history.jsonl").open("ab") as history:
        history.write(b'{"leftover": 1}\n')  # a kill's leftover: cut only once everything else passed
    before = files(finished)
    for command in ("resume", "report"):
        refused = abz(command, finished)
        assert refused.code == 1 and "state.json" in refused.err and message in refused.err, refused.err
    assert files(finished) == before


def test_deeply_nested_json_is_a_named_error(finished: Path, abz: Any) -> None:
    (finished / "summary.json").unlink()
    state = finished / "state.json"
    good = state.read_bytes()
    state.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    refused = abz("resume", finished)
    assert refused.code == 1 and "state.json is damaged" in refused.err and "nested deeper" in refused.err
    state.write_bytes(good)
    history = finished / "history.jsonl"
    lines = history.read_bytes().split(b"\n")
    lines[2] = b"[" * 100_000 + b"]" * 100_000
    history.write_bytes(b"\n".join(lines))
    for command in ("resume", "report"):
        refused = abz(command, finished)
        assert refused.code == 1 and "history.jsonl" in refused.err, refused.err


# --- item 18: a search that fails on a config error leaves nothing in the way of the corrected retry -----------


def test_a_search_refused_for_its_config_can_be_retried_in_the_same_folder(tmp_path: Path, abz: Any) -> None:
    out = tmp_path / "run"
    wrong = search_yaml(tmp_path / "wrong", seed_genotypes=[str(write_genotype(tmp_path, layers=2))])
    refused = abz("search", "--config", wrong, "--out", out)
    assert refused.code == 1 and "has 2 layers; this search has 4" in refused.err
    assert not [p.name for p in out.iterdir() if not p.name.startswith(".abz")]  # no config.yaml left behind
    retried = abz("search", "--config", search_yaml(tmp_path / "right"), "--out", out)
    assert retried.code == 0, retried.err


def test_a_search_with_adapt_steps_but_no_supernet_does_not_speak_of_one(tmp_path: Path, abz: Any) -> None:
    done = abz("search", "--config", search_yaml(tmp_path / "cfg", adapt_steps=2), "--out", tmp_path / "run")
    assert done.code == 0, done.err
    assert "search finished" in done.out and "on the final supernet" not in done.out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["final_supernet_scores"] == {}


def test_resume_refuses_a_changed_corpus_naming_the_data_hash(tmp_path: Path, abz: Any) -> None:
    """The data and vocabulary the fitness reads belong to the run identity: the same config over an edited
    corpus file is refused on resume (the unchanged corpus resumes)."""
    from tests.support.training import tiny_yaml

    config = tiny_yaml(tmp_path, search={"evaluations": 3, "population_size": 2, "tournament_size": 2,
                                         "round_size": 1, "fitness": "evaluate"},
                       evaluate={"estimator": "scratch", "steps": 1, "eval_batch_size": 8})
    out = tmp_path / "run"
    done = abz("search", "--config", config, "--out", out)
    assert done.code == 0, done.err
    state = json.loads((out / "state.json").read_text(encoding="utf-8"))
    assert set(state["body"]["run"]["data"]) == {"corpus_sha256", "vocab_sha256"}
    (out / "summary.json").unlink()
    again = abz("resume", out)
    assert again.code == 0, again.err
    (out / "summary.json").unlink()
    corpus = Path(yaml.safe_load(config.read_text(encoding="utf-8"))["data"]["corpus"])
    corpus.write_text(corpus.read_text(encoding="utf-8") + "\nOne more paragraph of text.\n", encoding="utf-8")
    before = files(out)
    refused = abz("resume", out)
    assert refused.code == 1 and "the data changed since the search started: data corpus_sha256" in refused.err
    assert files(out) == before


def test_a_version_2_search_is_reported_and_exported_but_not_resumed(tmp_path: Path, abz: Any) -> None:
    """A search written at 50404f4 (state version 2: one random stream, one priority table) is still reported
    and exported, but a resume is refused naming the version (it cannot continue the per-decision streams of
    version 3), and nothing changes."""
    folder = tmp_path / "old"
    shutil.copytree(FIXTURES / "search-v2-50404f4", folder)
    (folder / "summary.json").unlink()  # so that `abz resume` reads the state
    before = files(folder)
    refused = abz("resume", folder)
    assert refused.code == 1 and "state version 2" in refused.err, refused.err
    assert files(folder) == before
    assert abz("report", folder).code == 0
    exported = abz("export", folder, "--top", "2", "--no-hf", "--out", tmp_path / "best")
    assert exported.code == 0, exported.err
    assert (tmp_path / "best" / "rank1" / "genotype.abz").is_file()

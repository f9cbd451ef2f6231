"""Supernet training (`abz supernet`, train/supernet.py) through real DeepSpeed: the candidate schedule, ZeRO 0–2
with most shared weights idle per step, exact resume after SIGKILL, two processes, and `abz evaluate`'s
errors for bad supernet folders and candidate lists."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autobert_zero.cli import main
from autobert_zero.config.load import load_config
from autobert_zero.config.schema import Config
from autobert_zero.errors import ConfigError, TrainingError
from autobert_zero.grammar import Genotype, parse_genotype
from autobert_zero.train import checkpoint
from autobert_zero.train.data.seeds import CANDIDATE_SCHEDULE, derived_seed
from autobert_zero.train.engine import free_port
from autobert_zero.train.run_log import read_metrics
from autobert_zero.train.supernet import (
    CandidateSchedule,
    exposure_weights,
    load_supernet,
    train_supernet,
)
from tests.support.training import (
    REPO,
    run_killed_while_checkpointing,
    subprocess_env,
    tiny_config,
    tiny_yaml,
    with_section,
)

NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
CONV = ("attention a { return matmul(softmax(scale(matmul(Q, transpose(K)))), V) }\n"
        "backbone {\n  conv light kernel=7 dilation=1\n  conv sepconv kernel=3 dilation=2\n}\n")
ATTENTION = ("attention a { return matmul(softmax(scale(matmul(Q, transpose(K)))), neg(V)) }\n"
             "backbone {\n  attention a\n  attention a\n}\n")


def curve(out: Path) -> list[tuple[int, float, str]]:
    return [(r["step"], r["loss"], r["candidate"]) for r in read_metrics(out)]


def write_population(tmp: Path) -> Path:
    (tmp / "pop").mkdir(exist_ok=True)
    (tmp / "pop" / "conv.abz").write_text(CONV, encoding="utf-8")
    (tmp / "pop" / "attention.abz").write_text(ATTENTION, encoding="utf-8")
    listing = tmp / "pop" / "population.txt"
    listing.write_text("# two candidates\nconv.abz\nattention.abz  # a comment\n", encoding="utf-8")
    return listing


def test_uniform_schedule_is_a_pure_function_of_seed_and_step(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, supernet={"strategy": "uniform"}, pretrain={"max_steps": 6, "checkpoint_every": 3})
    summary = train_supernet(cfg, tmp_path / "sn")
    assert summary["steps"] == 6 and summary["strategy"] == "uniform"
    logged = [c for _, _, c in curve(tmp_path / "sn")]
    supernet, tokenizer = load_supernet(tmp_path / "sn", cfg)
    again = CandidateSchedule("uniform", derived_seed(0, CANDIDATE_SCHEDULE), [],
                              lambda rng: supernet.sample(rng, conv_probability=0.5))
    assert logged == [again.candidate(step).id[:12] for step in range(6)]
    assert len(set(logged)) == 6  # a fresh candidate every step
    assert len(tokenizer) == supernet.config.vocab_size == 512
    state = json.loads((tmp_path / "sn" / "checkpoints" / "step-00000006" / checkpoint.STATE_FILE).read_text())
    assert json.dumps(state).count("uniform") >= 1  # the candidate strategy is part of the run identity


def test_population_strategy_and_resume_refuses_another_population(tmp_path: Path) -> None:
    listing = write_population(tmp_path)
    cfg = tiny_config(tmp_path, supernet={"strategy": "population", "population": [str(listing)]},
                      pretrain={"max_steps": 8, "checkpoint_every": 4})
    train_supernet(cfg, tmp_path / "sn", max_steps=4)
    ids = {parse_genotype(CONV).id[:12], parse_genotype(ATTENTION).id[:12]}
    assert {c for _, _, c in curve(tmp_path / "sn")} == ids
    one_member = {"strategy": "population", "population": [str(tmp_path / "pop" / "conv.abz")]}
    other = tiny_config(tmp_path, supernet=one_member, pretrain={"max_steps": 8, "checkpoint_every": 4})
    with pytest.raises(TrainingError, match="candidate_population"):
        train_supernet(other, tmp_path / "sn", resume=True)
    emptied = with_section(cfg, "supernet", population=[])  # the loader fills an empty list; a caller may not
    with pytest.raises(ConfigError, match=r"supernet\.population is empty"):
        train_supernet(emptied, tmp_path / "x")


def near_copy_population() -> list[Genotype]:
    """[conv, its twin (a renamed unused graph: the same layer choices), a one-layer mutant, attention]."""
    return [parse_genotype(CONV), parse_genotype(CONV.replace("attention a {", "attention other {")),
            parse_genotype(CONV.replace("conv sepconv kernel=3 dilation=2", "conv light kernel=3 dilation=2")),
            parse_genotype(ATTENTION)]


def test_fair_weights_give_near_copies_one_share_between_them() -> None:
    conv, twin, near, attention = near_copy_population()
    weights = exposure_weights([conv, twin, near, attention])
    # layer 1: conv/twin/near share it (3); layer 2: conv/twin share it (2), near has its own (1)
    assert weights == pytest.approx([2 / 5, 2 / 5, 2 / 4, 1.0])
    assert exposure_weights([attention]) == [1.0]
    schedule = CandidateSchedule.from_population([conv, twin, near, attention], 7, "fair")
    draws = [schedule.candidate(step) for step in range(4000)]
    assert draws == [schedule.candidate(step) for step in range(4000)]  # a pure function of (seed, step)
    share = sum(d is attention for d in draws) / len(draws)
    assert share == pytest.approx(1.0 / sum(weights), abs=0.03)  # 0.43, against 0.25 drawn uniformly


def test_fair_exponent_tempers_the_weights_between_population_and_fair() -> None:
    population = near_copy_population()
    full = exposure_weights(population)
    half = CandidateSchedule.from_population(population, 7, "fair", fair_exponent=0.5)
    assert half.weights == pytest.approx([w ** 0.5 for w in full])
    assert CandidateSchedule.from_population(population, 7, "fair", fair_exponent=0.0).weights == [1.0] * 4
    assert CandidateSchedule.from_population(population, 7, "fair").weights == full


def test_fair_exponent_out_of_range_is_refused(tmp_path: Path) -> None:
    cfg_path = tmp_path / "bad.yaml"
    cfg_path.write_text("supernet:\n  fair_exponent: 1.5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="fair_exponent"):
        load_config(cfg_path)


def test_fair_strategy_trains_and_is_part_of_the_run_identity(tmp_path: Path) -> None:
    listing = write_population(tmp_path)
    cfg = tiny_config(tmp_path, supernet={"strategy": "fair", "population": [str(listing)]},
                      pretrain={"max_steps": 4, "checkpoint_every": 4})
    summary = train_supernet(cfg, tmp_path / "sn")
    assert summary["strategy"] == "fair" and summary["population"] == 2
    schedule = CandidateSchedule.from_population([parse_genotype(CONV), parse_genotype(ATTENTION)],
                                                 derived_seed(0, CANDIDATE_SCHEDULE), "fair")
    assert [c for _, _, c in curve(tmp_path / "sn")] == [schedule.candidate(s).id[:12] for s in range(4)]
    again = tiny_config(tmp_path, supernet={"strategy": "population", "population": [str(listing)]},
                        pretrain={"max_steps": 8, "checkpoint_every": 4})
    with pytest.raises(TrainingError, match="candidate_strategy"):
        train_supernet(again, tmp_path / "sn", resume=True)


@pytest.mark.parametrize("stage", [0, 1, 2])
def test_idle_shared_weights_under_zero_stages(tmp_path: Path, stage: int) -> None:
    # Population of one all-conv candidate: every step leaves the attention projections without gradients.
    (tmp_path / "conv.abz").write_text(CONV, encoding="utf-8")
    ds = {"zero_optimization": {"stage": stage}, "gradient_clipping": 1.0, "steps_per_print": 10**9}
    cfg = tiny_config(tmp_path, supernet={"strategy": "population", "population": [str(tmp_path / "conv.abz")]},
                      pretrain={"max_steps": 3, "checkpoint_every": 3, "weight_decay": 0.0}, deepspeed=ds)
    initial = load_initial(tmp_path, cfg)
    summary = train_supernet(cfg, tmp_path / "sn")
    assert torch.isfinite(torch.tensor(summary["final_loss"]))
    trained, _ = load_supernet(tmp_path / "sn", cfg)
    weights = trained.state_dict()
    layer = "autobert.encoder.layers.0."
    for idle in ("attention.query.weight", "conv.depthwise.input.weight", "conv.sepconv.pointwise.weight"):
        assert torch.equal(weights[layer + idle], initial[layer + idle]), idle  # no gradient, no decay: unmoved
    for used in ("conv.light.depthwise_weight", "conv.light.input.weight", "ffn.up.weight"):
        assert not torch.equal(weights[layer + used], initial[layer + used]), used


VALUE_FREE = ("attention q { return matmul(softmax(scale(matmul(Q, transpose(K)))), Q) }\n"
              "attention a { return matmul(softmax(scale(matmul(Q, transpose(K)))), V) }\n"
              "backbone {\n  attention q\n  attention a\n}\n")


def test_uses_v_split_trains_each_set_only_with_its_graphs_under_zero_2(tmp_path: Path) -> None:
    (tmp_path / "mixed.abz").write_text(VALUE_FREE, encoding="utf-8")
    ds = {"zero_optimization": {"stage": 2}, "gradient_clipping": 1.0, "steps_per_print": 10**9}
    cfg = tiny_config(tmp_path, supernet={"strategy": "population", "population": [str(tmp_path / "mixed.abz")],
                                          "per_branch": ["uses_v"]},
                      pretrain={"max_steps": 3, "checkpoint_every": 3, "weight_decay": 0.0}, deepspeed=ds)
    initial = load_initial(tmp_path, cfg)
    train_supernet(cfg, tmp_path / "sn")
    trained, _ = load_supernet(tmp_path / "sn", cfg)
    assert trained.per_branch == ("uses_v",)
    weights = trained.state_dict()
    layers = "autobert.encoder.layers."
    moved = {name: not torch.equal(weights[layers + name], initial[layers + name])
             for name in ("0.attention_nov.query.weight", "0.attention.query.weight",
                          "1.attention.value.weight", "1.attention_nov.query.weight")}
    # layer 1's graph reads no V: the value-free set trains there; layer 2's reads V: the main set trains
    assert moved == {"0.attention_nov.query.weight": True, "0.attention.query.weight": False,
                     "1.attention.value.weight": True, "1.attention_nov.query.weight": False}


def load_initial(tmp: Path, cfg: Config) -> dict[str, torch.Tensor]:
    from autobert_zero.train.mlm import prepare_mlm_data
    from autobert_zero.train.models import resolve_genotype
    from autobert_zero.train.supernet import build_supernet

    prepared = prepare_mlm_data(cfg)
    host = resolve_genotype(cfg)
    assert prepared.tokenizer.pad_token_id is not None
    model = build_supernet(host, cfg, len(prepared.tokenizer), prepared.tokenizer.pad_token_id)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_killed_supernet_run_resumes_with_the_same_candidates_and_losses(tmp_path: Path) -> None:
    proc = run_killed_while_checkpointing(tmp_path, "autobert_zero.train.supernet:train_supernet")
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert checkpoint.read_latest(tmp_path / "killed" / "checkpoints") == "step-00000004"
    cfg = tiny_config(tmp_path)
    train_supernet(cfg, tmp_path / "killed", resume=True)
    train_supernet(cfg, tmp_path / "whole")
    resumed, whole = curve(tmp_path / "killed"), curve(tmp_path / "whole")
    assert [s for s, _, _ in resumed] == list(range(1, 13))
    assert [c for _, _, c in resumed] == [c for _, _, c in whole]
    assert [loss for _, loss, _ in resumed] == pytest.approx([loss for _, loss, _ in whole], abs=1e-6)


def test_two_processes_match_one_process(tmp_path: Path) -> None:
    ds = {"zero_optimization": {"stage": 2}, "gradient_clipping": 1.0, "steps_per_print": 10**9}
    pretrain = {"micro_batch_size": 2, "gradient_accumulation_steps": 2, "max_steps": 6, "checkpoint_every": 6}
    config = tiny_yaml(tmp_path, model=NO_DROPOUT, pretrain=pretrain, deepspeed=ds)
    launcher = shutil.which("deepspeed") or str(Path(sys.executable).with_name("deepspeed"))
    command = [launcher, "--num_gpus", "2", "--master_port", str(free_port()), "--no_local_rank", "--module",
               "autobert_zero.cli", "supernet", "--config", str(config), "--out", str(tmp_path / "two")]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=subprocess_env(OMP_NUM_THREADS="1"),
                          timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["world_size"] == 2
    one = tiny_config(tmp_path, model=NO_DROPOUT, pretrain={**pretrain, "gradient_accumulation_steps": 4},
                      deepspeed=ds)
    train_supernet(one, tmp_path / "one")
    two, single = curve(tmp_path / "two"), curve(tmp_path / "one")
    assert [c for _, _, c in two] == [c for _, _, c in single]
    assert [loss for _, loss, _ in two] == pytest.approx([loss for _, loss, _ in single], rel=1e-4)


@pytest.fixture(scope="module")
def supernet_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("cli")
    cfg = tiny_yaml(tmp, pretrain={"max_steps": 2, "checkpoint_every": 2})
    assert main(["supernet", "--config", str(cfg), "--out", str(tmp / "sn")]) == 0
    return tmp


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_abz_evaluate_table_and_json(supernet_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (supernet_run / "three.abz").write_text(ATTENTION.replace("attention a\n}", "attention a\n  attention a\n}"))
    genotypes = [str(supernet_run / "bert2.abz"), str(supernet_run / "three.abz")]
    code, out, _ = run_cli(["evaluate", "--supernet", str(supernet_run / "sn"), *genotypes], capsys)
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].startswith("estimator biws, 20 training steps per candidate; scored on 8 held-out blocks of 32")
    assert lines[1].split()[:4] == ["id", "status", "score", "eval_loss"]
    assert lines[2].split()[1] == "ok" and lines[3].split()[1] == "failed" and "3 layers" in lines[3]
    code, out, _ = run_cli(["evaluate", "--supernet", str(supernet_run / "sn"), "--json", "--steps", "1",
                            genotypes[0]], capsys)
    (result,) = json.loads(out)
    assert code == 0 and result["status"] == "ok" and result["score"] == -result["eval_loss"]


def test_abz_evaluate_errors(supernet_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sn, bert = str(supernet_run / "sn"), str(supernet_run / "bert2.abz")
    (supernet_run / "bad.abz").write_text("attention a { return matmul(Q, K) }\nbackbone { attention a }\n")
    broken = supernet_run / "broken"
    shutil.copytree(supernet_run / "sn", broken)
    weights = broken / "final" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    small = tiny_yaml(supernet_run, model={"intermediate_size": 128})
    cases = [
        (["evaluate", "--supernet", str(supernet_run / "missing"), bert], 1,
         "supernet folder .*missing: no config.json"),
        (["evaluate", "--supernet", str(broken), bert], 1, "final/ could not be loaded"),
        (["evaluate", "--supernet", sn, "--config", str(small), bert], 1,
         "sizes disagree with the supernet .*model.intermediate_size: checkpoint 64, config 128"),
        (["evaluate", "--supernet", sn, str(supernet_run / "bad.abz")], 2, "invalid genotype"),
        (["evaluate", "--supernet", sn], 1, "no candidates to evaluate"),
        (["evaluate", bert], 1, "needs --config FILE, or --supernet DIR"),
    ]
    for args, expected, message in cases:
        code, _, err = run_cli(args, capsys)
        assert code == expected, (args, err)
        assert "Traceback" not in err and "internal error" not in err
        assert re.search(message, " ".join(err.split())), err


def test_resume_refuses_any_changed_supernet_key_naming_each(tmp_path: Path) -> None:
    listing = write_population(tmp_path)
    cfg = tiny_config(tmp_path, supernet={"strategy": "fair", "population": [str(listing)]},
                      pretrain={"max_steps": 4, "checkpoint_every": 2})
    train_supernet(cfg, tmp_path / "sn", max_steps=2)
    changed = with_section(cfg, "supernet", conv_probability=0.7, fair_exponent=0.5, per_branch=["norm"])
    refusal = (r"config changed since the run started: supernet\.conv_probability 0\.5 -> 0\.7; "
               r"supernet\.per_branch \[\] -> \['norm'\]; supernet\.fair_exponent 1\.0 -> 0\.5\. ")
    with pytest.raises(TrainingError, match=refusal):
        train_supernet(changed, tmp_path / "sn", resume=True)
    moved = tmp_path / "moved"  # the population read from another path: the same genotypes, the same run
    shutil.copytree(tmp_path / "pop", moved)
    same = with_section(with_section(cfg, "supernet", population=[str(moved / "population.txt")]), "logging",
                        log_every=3)
    assert train_supernet(same, tmp_path / "sn", resume=True)["steps"] == 4


def test_resume_after_a_kill_past_the_last_checkpoint_reports_the_logged_loss(
        supernet_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    killed = supernet_run / "killed-exporting"
    shutil.copytree(supernet_run / "sn", killed)
    shutil.rmtree(killed / "final")
    (killed / "summary.json").unlink()
    config = tiny_yaml(supernet_run, pretrain={"max_steps": 2, "checkpoint_every": 2})
    code, out, err = run_cli(["supernet", "--config", str(config), "--out", str(killed), "--resume"], capsys)
    assert code == 0, err
    logged = read_metrics(killed)[-1]["loss"]
    assert f"trained the supernet 2 steps (population candidates); final loss {logged:.4f}" in out
    assert json.loads((killed / "summary.json").read_text())["final_loss"] == logged


def test_load_supernet_refuses_weights_that_do_not_match_its_config(supernet_run: Path) -> None:
    from safetensors.torch import load_file, save_file

    from autobert_zero.train.models import build_mlm_model, resolve_genotype

    cfg = tiny_config(supernet_run, pretrain={"max_steps": 2, "checkpoint_every": 2})
    _, tokenizer = load_supernet(supernet_run / "sn", cfg)

    lacking = supernet_run / "lacking"  # one tensor removed: it would be initialised at random
    shutil.copytree(supernet_run / "sn", lacking)
    weights = load_file(lacking / "final" / "model.safetensors")
    removed = sorted(weights)[-1]
    del weights[removed]
    save_file(weights, lacking / "final" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(TrainingError, match=rf"does not match the supernet .*missing {re.escape(removed)}"):
        load_supernet(lacking, cfg)

    posing = supernet_run / "posing" / "final"  # a plain pre-trained model with a supernet key added
    model = build_mlm_model(resolve_genotype(cfg), cfg.model, len(tokenizer), tokenizer.pad_token_id)
    model.save_pretrained(str(posing))
    tokenizer.save_pretrained(str(posing))
    config = json.loads((posing / "config.json").read_text())
    (posing / "config.json").write_text(json.dumps({**config, "supernet_per_branch": []}))
    with pytest.raises(TrainingError, match=r"does not match the supernet .*missing .*conv"):
        load_supernet(posing.parent, cfg)


def test_a_deeply_nested_supernet_config_json_is_a_clean_error(supernet_run: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    nested = supernet_run / "nested"
    shutil.copytree(supernet_run / "sn", nested)
    (nested / "config.json").write_text('{"model": ' + "[" * 100_000 + "]" * 100_000 + "}")
    code, _, err = run_cli(["evaluate", "--supernet", str(nested), str(supernet_run / "bert2.abz")], capsys)
    assert code == 1 and "nested deeper than" in err and "internal error" not in err
    (nested / "config.json").write_text((supernet_run / "sn" / "config.json").read_text())
    final_config = nested / "final" / "config.json"
    final_config.write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    code, _, err = run_cli(["evaluate", "--supernet", str(nested), str(supernet_run / "bert2.abz")], capsys)
    assert code == 1 and "final/config.json: JSON nested deeper than" in err and "internal error" not in err

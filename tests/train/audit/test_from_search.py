"""Audit candidates drawn from search histories (`train/audit/from_search.py`) and the exposure control: the mix
of a synthetic search's history written by the search's own writer (`Search` + `StateStore`, no training),
and every bad input refused with one `AuditSourceError` (or `ConfigError`) naming the file and what is missing."""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from pathlib import Path

import pytest

from autobert_zero.errors import AbzError, ConfigError
from autobert_zero.evolve import Search, StateStore, Status, SyntheticFitness
from autobert_zero.evolve.settings import SearchSettings
from autobert_zero.evolve.state import load_verified_history
from autobert_zero.grammar import Language, default_language, validate
from autobert_zero.grammar.ops import DEFAULT_OPS
from autobert_zero.train.audit.candidates import candidate_set, exposure_cluster
from autobert_zero.train.audit.from_search import (
    MIN_SIBLINGS,
    NOT_EDITS,
    AuditSourceError,
    draw_from_searches,
    mix,
    read_searches,
)
from autobert_zero.train.audit.run import audit_candidates
from autobert_zero.train.evaluate import genotype_fingerprint
from tests.support.languages import GELU, grammar_with
from tests.support.training import tiny_config

SETTINGS = SearchSettings(evaluations=120, population_size=8, tournament_size=3, round_size=4, fitness="synthetic")


def write_search(folder: Path, *, evaluations: int = 120, num_layers: int = 2, seed: int = 0,
                 language: Language | None = None, ops: list[str] | None = None) -> Path:
    """A finished synthetic search written by the search itself (state.json + history.jsonl)."""
    language = language or default_language()
    settings = SearchSettings(**{**SETTINGS.__dict__, "evaluations": evaluations, "ops": ops})
    Search(settings, language, SyntheticFitness(seed, language), seed=seed, num_layers=num_layers,
           store=StateStore(folder)).run()
    return folder


@pytest.fixture(scope="module")
def search(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_search(tmp_path_factory.mktemp("search") / "run")


def test_the_mix_has_its_shares_of_top_decile_sibling_groups_and_uniform(search: Path) -> None:
    _, lines = load_verified_history(search)
    pool = read_searches([search], 2)
    count = 24
    chosen = draw_from_searches(pool, count, seed=0)
    kinds = Counter(c.kind for c in chosen)
    assert len(chosen) == count and set(kinds) == {"top", "sibling", "uniform"}
    assert kinds["top"] >= math.ceil(count / 3) and kinds["sibling"] >= math.ceil(count / 4)
    assert len({c.id for c in chosen}) == count and len({genotype_fingerprint(c.genotype) for c in chosen}) == count
    by_id = {line.id: line for line in lines if line.status is Status.OK}
    assert all(c.id in by_id for c in chosen)  # only ok lines
    # the top decile: the best ceil(10 %) distinct ok genotypes of the search
    ranked = sorted(by_id.values(), key=lambda line: (-(line.fitness or 0.0), line.index))
    decile = {line.id for line in ranked[:math.ceil(len(ranked) / 10)]}
    assert all(c.id in decile for c in chosen if c.kind == "top")
    # siblings: groups of at least 3 one-edit children of one parent, the group named by the parent
    groups = Counter(c.group for c in chosen if c.kind == "sibling")
    assert groups and all(size >= MIN_SIBLINGS for size in groups.values())
    for c in chosen:
        if c.kind == "sibling":
            assert by_id[c.id].parent == c.group and by_id[c.id].mutation not in NOT_EDITS
        assert c.fitness == by_id[c.id].fitness and f"{search / 'history.jsonl'}:" in c.detail
        assert not validate(c.genotype) and c.genotype.num_layers == 2
    # seeded by the config seed: the same seed draws the same set, another seed another
    assert [c.id for c in draw_from_searches(pool, count, seed=0)] == [c.id for c in chosen]
    assert [c.id for c in draw_from_searches(pool, count, seed=1)] != [c.id for c in chosen]


def test_duplicates_across_searches_are_drawn_once(search: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(search, copy)
    single, double = read_searches([search], 2), read_searches([search, copy], 2)
    assert [e.line.id for e in double.entries] == [e.line.id for e in single.entries]  # the copy adds nothing
    assert all(e.folder == search for e in double.entries)


def test_exposure_cluster_mutates_the_weakest_genotype(search: Path) -> None:
    pool = read_searches([search], 2)
    weakest = pool.weakest()
    assert weakest.line.fitness == min(e.line.fitness for e in pool.entries if e.line.fitness is not None)
    drawn = draw_from_searches(pool, 12, seed=0)
    cluster = exposure_cluster(weakest.genotype, 5, 0, label="weakest", existing=drawn)
    assert [c.kind for c in cluster] == ["exposure"] * 5 and {c.group for c in cluster} == {"exposure:weakest"}
    assert not {c.id for c in cluster} & {c.id for c in drawn}
    assert len({genotype_fingerprint(c.genotype) for c in [*cluster, *drawn]}) == 17
    with pytest.raises(ConfigError, match="--exposure-control 2"):
        exposure_cluster(weakest.genotype, 2, 0, label="weakest")


def test_audit_candidates_with_and_without_searches(search: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    drawn, base = audit_candidates(cfg, 2, 6, exposure=3)
    assert [c.kind for c in drawn] == ["bert", "figure7", "neighbour", "neighbour", "random", "random",
                                       "exposure", "exposure", "exposure"]
    assert base == "bert" and drawn[2].group == "figure7"
    assert [c.id for c in drawn[:6]] == [c.id for c in candidate_set(2, 6, cfg.seed)]  # the default set is unchanged
    searched, base = audit_candidates(cfg, 2, 8, from_search=[search], exposure=4)
    assert Counter(c.kind for c in searched)["exposure"] == 4 and len(searched) == 12
    assert base is not None and "the weakest ok genotype" in base and "history.jsonl:" in base


def _edit_history(folder: Path) -> None:
    lines = (folder / "history.jsonl").read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[3])
    record["fitness"] = 99.0
    lines[3] = json.dumps(record, sort_keys=True)
    (folder / "history.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_bad_inputs_are_refused_naming_the_file(search: Path, tmp_path: Path) -> None:
    with pytest.raises(AuditSourceError, match=r"--from-search .*nowhere: no such folder"):
        read_searches([tmp_path / "nowhere"], 2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AuditSourceError, match=r"empty is not a readable search: .*state\.json is missing"):
        read_searches([tmp_path / "empty"], 2)
    damaged = tmp_path / "damaged"
    shutil.copytree(search, damaged)
    _edit_history(damaged)
    with pytest.raises(AuditSourceError, match=r"damaged/history\.jsonl: .*edited or damaged"):
        read_searches([damaged], 2)
    with pytest.raises(AuditSourceError, match=r"run/state\.json: the search made 2-layer candidates but the "
                                               r"supernet has 4 layers"):
        read_searches([search], 4)
    small = write_search(tmp_path / "small", evaluations=10)
    with pytest.raises(AuditSourceError, match=r"small/history\.jsonl: \d+ distinct `ok` genotypes, fewer than "
                                               r"--candidates 24"):
        draw_from_searches(read_searches([small], 2), 24)
    with pytest.raises(AuditSourceError, match=r"small/history\.jsonl: \d+ parents with at least 3 one-edit"):
        draw_from_searches(read_searches([small], 2), 6)
    with pytest.raises(ConfigError, match="--candidates 4 with --from-search"):
        mix(4)
    assert issubclass(AuditSourceError, AbzError)


def test_a_search_of_another_language_is_refused(tmp_path: Path) -> None:
    language = Language(grammar_with("gelu"), {**DEFAULT_OPS, "gelu": GELU})
    other = write_search(tmp_path / "gelu", evaluations=30, language=language, ops=["gelu", "matmul", "softmax"])
    _, lines = load_verified_history(other)
    assert any("gelu(" in line.genotype for line in lines if line.status is Status.OK)
    with pytest.raises(AuditSourceError, match=r"gelu/history\.jsonl:\d+: candidate \w+ is not a genotype of the "
                                               r"audit's language .*unknown op 'gelu'.*another grammar or op table"):
        read_searches([other], 2)

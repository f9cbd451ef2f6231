"""Parsing, printing and validation: round trips, shipped genotypes, and every invalid fixture's error."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from autobert_zero.errors import GenotypeError
from autobert_zero.grammar import (
    CODES,
    AttentionLayer,
    ConvLayer,
    load_genotype,
    parse_genotype,
    parse_with_diagnostics,
    read_genotype_text,
    sample_genotype,
)
from tests.support.paths import FIXTURES, GENOTYPES

INVALID = sorted((FIXTURES / "invalid").glob("*.abz"))
SPECIAL = {"binary.abz": ("encoding", 1, 1), "empty.abz": ("no-backbone", 1, 1)}


def expected_error(path: Path) -> tuple[str, int, int]:
    if path.name in SPECIAL:
        return SPECIAL[path.name]
    first = path.read_text(encoding="utf-8").splitlines()[0]
    _, _, code, position = first.split()
    line, column = position.split(":")
    return code, int(line), int(column)


@pytest.mark.parametrize("path", INVALID, ids=[p.name for p in INVALID])
def test_invalid_fixture_reports_code_and_position(path: Path) -> None:
    code, line, column = expected_error(path)
    text, errors = read_genotype_text(path)
    if text is not None:
        genotype, errors = parse_with_diagnostics(text, str(path))
        assert genotype is None or errors
    assert errors, f"{path.name} was accepted"
    first = errors[0]
    assert (first.code, first.line, first.column) == (code, line, column), first.render()
    assert first.code in CODES
    assert len(first.message) > 20  # says what is wrong and what was expected


def test_every_code_has_a_fixture_or_a_reason() -> None:
    covered = {expected_error(p)[0] for p in INVALID}
    not_from_files = {"io"}  # a file that cannot be read: tested through load_genotype below
    assert set(CODES) - covered <= not_from_files


def test_load_genotype_raises_with_file_position() -> None:
    path = FIXTURES / "invalid" / "shape.abz"
    with pytest.raises(GenotypeError) as info:
        load_genotype(path)
    assert str(info.value).startswith(f"{path}:3:12: error[shape]:")


def test_missing_file_is_an_io_error(tmp_path: Path) -> None:
    with pytest.raises(GenotypeError, match=r"error\[io\]: cannot read"):
        load_genotype(tmp_path / "nope.abz")


@pytest.mark.parametrize("name", ["bert.abz", "autobert_zero.abz"])
def test_shipped_genotypes_parse_and_round_trip(name: str) -> None:
    genotype = load_genotype(GENOTYPES / name)
    assert genotype.num_layers == 12
    again = parse_genotype(genotype.to_text())
    assert again == genotype
    assert again.to_text() == genotype.to_text()


def test_figure7_layout() -> None:
    genotype = load_genotype(GENOTYPES / "autobert_zero.abz")
    kinds = [type(layer) for layer in genotype.layers]
    assert kinds == [ConvLayer, AttentionLayer] * 6
    assert [layer.kernel for layer in genotype.layers if isinstance(layer, ConvLayer)] == [65, 9, 3, 7, 7, 3]
    shallow = genotype.layer_graph(1)
    deep = genotype.layer_graph(11)
    assert shallow is not None and deep is not None
    assert "V" not in shallow.inputs_used and "V" in deep.inputs_used


def test_round_trip_random_genotypes() -> None:
    rng = random.Random(1234)
    for _ in range(300):
        genotype = sample_genotype(rng, num_layers=rng.randint(1, 6))
        assert parse_genotype(genotype.to_text()) == genotype


def test_nested_and_bound_spellings_are_the_same_ir() -> None:
    nested = "attention a { return matmul(softmax(scale(matmul(Q, transpose(K)))), V) } backbone { attention a }"
    bound = """
    attention a {
        probs = softmax(s)          # bindings may come in any order
        s = scale(matmul(Q, kt)); kt = transpose(K)
        return matmul(probs, V)
    }
    backbone { attention a }
    """
    assert parse_genotype(nested) == parse_genotype(bound)


def test_several_errors_are_reported_together() -> None:
    text = "attention a { x = neg(Q) return matmul(Q, K) }\nbackbone { attention a conv kernel=4 }"
    _, errors = parse_with_diagnostics(text)
    assert [e.code for e in errors] == ["unused"]  # resolution errors stop before validation
    text = "attention a { return matmul(Q, K) }\nbackbone { attention a conv kernel=4 }"
    _, errors = parse_with_diagnostics(text)
    assert [e.code for e in errors] == ["shape", "conv-kernel"]


def test_reserved_words_cannot_name_nodes() -> None:
    with pytest.raises(GenotypeError, match="syntax"):
        parse_genotype("attention a { softmax = neg(Q) return softmax } backbone { attention a }")


def test_a_name_outside_the_op_table_is_an_unknown_op_error() -> None:
    """Calls are looked up in the op table only: any other name (here a Python builtin, `__import__`) is
    reported as an unknown op at its position, with the ops that exist."""
    for name in ("__import__", "exp"):
        _, errors = parse_with_diagnostics(f"attention a {{ return {name}(Q) }} backbone {{ attention a }}")
        assert [(e.code, e.line, e.column) for e in errors] == [("unknown-op", 1, 22)]
        assert f"unknown op {name!r}" in errors[0].message and "softmax" in errors[0].message

"""A check made both by the parser (on text) and by the validator (on an IR built in code) words its problem
the same way; positions come from one line/column helper."""

from __future__ import annotations

from pathlib import Path

from autobert_zero.grammar import (
    AttentionGraph,
    AttentionLayer,
    Call,
    Genotype,
    Input,
    parse_with_diagnostics,
    read_genotype_text,
    validate,
)
from autobert_zero.grammar.diagnostics import line_column

NEG_Q = AttentionGraph("a", Call("neg", (Input("Q"),)))


def parser_says(text: str) -> tuple[str, str]:
    genotype, errors = parse_with_diagnostics(text)
    assert genotype is None and len(errors) == 1, errors
    return errors[0].code, errors[0].message


def validator_says(genotype: Genotype) -> tuple[str, str]:
    errors = validate(genotype)
    assert len(errors) == 1, errors
    return errors[0].code, errors[0].message


def test_parser_and_validator_word_shared_checks_alike() -> None:
    arity = Genotype((AttentionGraph("a", Call("add", (Input("Q"),))),), (AttentionLayer("a"),))
    assert parser_says("attention a { return add(Q) } backbone { attention a }") == validator_says(arity) == (
        "arity", "add takes 2 operands, got 1")
    unknown = Genotype((NEG_Q,), (AttentionLayer("b"),))
    assert parser_says("attention a { return neg(Q) } backbone { attention b }") == validator_says(unknown) == (
        "unknown-graph", "layer uses attention graph 'b', which is not defined (defined: a)")
    no_layers = parser_says("attention a { return neg(Q) } backbone { }")
    assert no_layers == validator_says(Genotype((NEG_Q,), ())) and no_layers[0] == "no-layers"


def test_line_and_column_of_an_offset() -> None:
    text = "ab\ncde\n"
    assert [line_column(text, i) for i in (0, 2, 3, 5, len(text))] == [(1, 1), (1, 3), (2, 1), (2, 3), (3, 1)]


def test_a_bad_byte_is_located_by_byte_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.abz"
    path.write_bytes("ab\n\u00e9x".encode() + b"\xff")
    text, errors = read_genotype_text(path)
    assert text is None and [(e.code, e.line, e.column) for e in errors] == [("encoding", 2, 4)]

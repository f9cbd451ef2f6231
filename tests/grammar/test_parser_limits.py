"""Genotype resolution has no recursion limit and hostile numbers/characters get diagnostics.

A 300-binding chain used to be a RecursionError (exit 3) through `abz check`, `--genotype` and a model
folder's config.json; a kernel of thousands of digits a lark VisitError; a Cyrillic look-alike letter an
error that did not say which character it was.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from autobert_zero.cli import main
from autobert_zero.errors import GenotypeError
from autobert_zero.grammar import parse_with_diagnostics

TAIL = "return matmul(softmax(scale(matmul({x}, transpose(K)))), V)\n}}\nbackbone {{ attention g }}\n"


def chain(n: int) -> str:
    lines = ["a0 = neg(Q)", *(f"a{i} = neg(a{i - 1})" for i in range(1, n))]
    return "attention g {\n" + "\n".join(lines) + "\n" + TAIL.format(x=f"a{n - 1}")


def doubling(n: int) -> str:
    lines = ["a0 = add(Q, Q)", *(f"a{i} = add(a{i - 1}, a{i - 1})" for i in range(1, n))]
    return "attention g {\n" + "\n".join(lines) + "\n" + TAIL.format(x=f"a{n - 1}")


@pytest.mark.parametrize("n", [300, 3000])
def test_long_binding_chain_is_too_large_not_recursion(n: int) -> None:
    genotype, errors = parse_with_diagnostics(chain(n))
    assert genotype is None
    assert [e.code for e in errors] == ["too-large"]
    assert "nests deeper than 200" in errors[0].message and errors[0].line == 202


def test_short_chain_still_resolves() -> None:
    genotype, errors = parse_with_diagnostics(chain(8))
    assert errors == [] and genotype is not None


def test_doubling_chain_is_too_large_quickly() -> None:
    # 2**60 nodes written out: refused by counting before expanding (no wall-clock assertion; without the
    # count the expansion never finishes).
    _, errors = parse_with_diagnostics(doubling(60))
    assert [e.code for e in errors] == ["too-large"] and "written out" in errors[0].message


def test_cycle_and_undefined_still_reported() -> None:
    text = "attention g {\na = neg(b)\nb = neg(a)\n" + TAIL.format(x="a")
    assert [e.code for e in parse_with_diagnostics(text)[1]] == ["cycle"]
    text = "attention g {\n" + TAIL.format(x="zz")
    assert [e.code for e in parse_with_diagnostics(text)[1]] == ["undefined"]


def test_kernel_with_thousands_of_digits_is_a_diagnostic() -> None:
    text = "attention g {\n" + TAIL.format(x="Q").replace("attention g }", "conv kernel=" + "9" * 5000 + "\n}")
    _, errors = parse_with_diagnostics(text)
    assert [e.code for e in errors] == ["too-large"] and "5,000 digits" in errors[0].message


def test_cyrillic_look_alike_is_named_by_code_point() -> None:
    text = "attention g {\n" + TAIL.format(x="Q").replace("backbone { attention", "backbone { \u0430ttention")
    _, errors = parse_with_diagnostics(text)
    assert "U+0430 CYRILLIC SMALL LETTER A" in errors[0].message and "looks like 'a'" in errors[0].message


def test_chain_through_every_entry_point(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "chain.abz"
    path.write_text(chain(300), encoding="utf-8")
    assert main(["check", str(path)]) == 2
    assert "too-large" in capsys.readouterr().out
    assert main(["show", str(path)]) == 2
    assert main(["compile", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "too-large" in err and "internal error" not in err
    assert not (tmp_path / "out").exists()
    from autobert_zero.compiler import AutoBertZeroConfig

    with pytest.raises(GenotypeError, match="too-large"):  # a config.json carrying the genotype text
        AutoBertZeroConfig(genotype=chain(300)).parsed_genotype()


def test_too_many_layers_is_a_diagnostic_at_the_first_extra_layer(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from autobert_zero.evolve.settings import MAX_LAYERS as SEARCH_MAX_LAYERS
    from autobert_zero.grammar.language import MAX_LAYERS

    assert SEARCH_MAX_LAYERS == MAX_LAYERS  # search.num_layers is bounded by the language's limit
    layers = MAX_LAYERS + 44
    text = "backbone {\n" + "  conv kernel=3\n" * layers + "}\n"
    _, errors = parse_with_diagnostics(text)
    assert [(e.code, e.line, e.column) for e in errors] == [("too-many-layers", MAX_LAYERS + 2, 3)]
    assert f"has {layers} layers; the limit is {MAX_LAYERS}" in errors[0].message
    path = tmp_path / "deep.abz"
    path.write_text(text, encoding="utf-8")
    assert main(["check", str(path)]) == 2
    assert f"{path}:{MAX_LAYERS + 2}:3: error[too-many-layers]" in capsys.readouterr().out
    _, errors = parse_with_diagnostics("backbone {\n" + "  conv kernel=3\n" * MAX_LAYERS + "}\n")
    assert errors == []

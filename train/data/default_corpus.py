"""The embedded default corpus: English text that ships with every Python, so pre-training needs no download.

Two sources, both read without importing any module we do not control:
`pydoc_data.topics` (the language reference behind `help()`, about 0.5 MB) and the docstrings of the
standard library's top-level modules, read with `ast` from their source files (about 0.9 MB).
Paragraphs are whitespace-normalised and returned in a fixed order, so one Python version always yields
the same corpus (and therefore the same corpus hash and trained tokenizer).
"""

from __future__ import annotations

import ast
import functools
import re
import sysconfig
from collections.abc import Iterator
from pathlib import Path

MIN_PARAGRAPH_CHARS = 40
"""Shorter paragraphs (headings, signatures, `>>>` fragments) are dropped."""

_DOC_NODES = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _paragraphs(text: str) -> Iterator[str]:
    for block in re.split(r"\n\s*\n", text):
        paragraph = " ".join(block.split())
        if len(paragraph) >= MIN_PARAGRAPH_CHARS:
            yield paragraph


def _pydoc_topics() -> Iterator[str]:
    from pydoc_data.topics import topics

    for name in sorted(topics):
        yield from _paragraphs(topics[name])


def _stdlib_docstrings() -> Iterator[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for source in sorted(stdlib.glob("*.py")):
        try:
            tree = ast.parse(source.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, _DOC_NODES):
                doc = ast.get_docstring(node)
                if doc:
                    yield from _paragraphs(doc)


@functools.cache
def default_corpus_texts() -> tuple[str, ...]:
    """Paragraphs of the embedded corpus (pydoc topics first, then standard-library docstrings)."""
    return (*_pydoc_topics(), *_stdlib_docstrings())

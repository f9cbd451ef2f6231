"""The one resolver of a config's `language:` section: `language_from_config(cfg) -> Language`.

Every command that reads a genotype asks this module for the language of its config (`grammar/loading.py`
builds it, runs the op module once per process and records it). A config the user gave names its own language
and needs no consent; a config read back from a folder (a search's config.yaml, a supernet's config.json)
names code the folder chose, so its op module runs only under `trust_language_code` (`--trust-language-code`),
unless this process ran that very source already.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from autobert_zero.config.schema import Config, LanguageConfig
from autobert_zero.errors import LanguageError
from autobert_zero.grammar.language import Language, current_language
from autobert_zero.grammar.loading import CONSENT, code_trusted, is_path, load_language, module_already_run


def is_custom(section: LanguageConfig) -> bool:
    """Whether the section names anything (else it is the built-in language)."""
    return any(value is not None for value in (section.grammar, section.ops, section.plugin))


def absolute_paths(section: LanguageConfig) -> LanguageConfig:
    """The section with its file paths made absolute (against the working directory), so the config can be
    saved into a folder and read back from anywhere."""
    grammar = str(Path(section.grammar).expanduser().resolve()) if section.grammar is not None else None
    ops = section.ops
    if ops is not None and is_path(ops):
        ops = str(Path(ops).expanduser().resolve())
    return dataclasses.replace(section, grammar=grammar, ops=ops)


def language_from_config(cfg: Config, *, folder: str | Path | None = None) -> Language:
    """The language of `cfg.language` (the built-in one when the section is empty). `folder`: the config was
    read from that folder, so an op module it names runs only with consent (see the module doc). A command
    that rebuilt a folder's language from its record and made it active (`grammar.using_language`) gets that
    language back for a config naming the same files, without reading them again."""
    section = cfg.language
    active = current_language()
    if folder is None and active.record is not None and names(section, active.record):
        return active  # a command rebuilt it from a folder's record (`grammar.using_language`): the same files
    if folder is not None and section.ops is not None and not code_trusted() and not _ran(section.ops):
        raise LanguageError(f"{folder} was made with a custom language whose op module {section.ops} runs to read "
                            f"its genotypes; it runs only with {CONSENT}. Give that only for a folder you trust")
    return load_language(section.grammar, section.ops, section.plugin, where=f"{cfg.source}: language")


def names(section: LanguageConfig, record: Mapping[str, Any]) -> bool:
    """Whether `section` names the very sources `record` was made from (same grammar file, same op file, module
    or plugin): what a folder's config.yaml or config.json says of the language its records carry."""
    ops = record.get("ops") or {}
    recorded_ops = ops.get("file") if section.ops is not None and is_path(section.ops) else ops.get("module")
    return (section.grammar == record["grammar"].get("file")
            and section.ops == (recorded_ops if section.ops is not None else None)
            and section.plugin == ops.get("plugin") and (section.ops is None or "plugin" not in ops))


def _ran(ops: str) -> bool:
    """Whether this process has run op module `ops` (a file: the same source) already."""
    if is_path(ops):
        return module_already_run(Path(ops))
    return ops in sys.modules

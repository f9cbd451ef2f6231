"""Languages named by files, modules and plugins; the record each one leaves; the consent to run recorded code.

A custom language is a grammar (`.lark` text) and an **op module**: Python that defines the new ops. The
op-module protocol (a `.py` file, an importable module, or what a plugin's entry point loads):

    OPS: list[OpSpec]              # the new ops' table entries (grammar/ops.py: arity, shape rule, formula, ...)
    IMPLS: dict[str, Callable]     # op name → implementation on (B, H, a, b) tensors (compiler/op_impls.py);
                                   # exactly one per entry of OPS
    GRAMMAR: str                   # optional: the grammar text, used when no grammar file is named

An op may not reuse a built-in op's name (the built-in ops keep their meaning in every language). Without a
grammar file (and no `GRAMMAR`), the language's grammar is the built-in one with the module's ops added to
its rule `op`. A **plugin** is an installed distribution whose entry point in the group `autobert_zero.ops`
(`ENTRY_POINT_GROUP`) names such a module.

Every language but the built-in one carries a **record** (`Language.record`, JSON data) that travels with
what it makes (run folders, supernets, search states, exported `config.json`):

    {"format": "abz-language-1", "sha256": ...,
     "grammar": {"text": ..., "file": path or null, "sha256": ...},
     "ops": null                                                          # no op module
          | {"module": name or null, "file": path or null, "source": ..., "sha256": ...}
          | {"plugin": name, "distribution": ..., "version": ..., "module": ..., "sha256": ...}}

The sha256s are of the grammar text, of the op module source (a plugin: its name, version and source), and
of the two together (`sha256`, the language's identity). `language_from_record` rebuilds the language from a
record. A record holding op source runs that code, so it needs consent: `trust_language_code()` (what
`--trust-language-code` and `trust_remote_code=True` turn on), unless this process already built the same
language (same sha256) from sources the user named. A plugin record runs installed code and needs none (the
installed plugin must have the recorded sha256). This module imports no torch; op modules usually do.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import importlib
import importlib.metadata
import json
import linecache
import re
import sys
import traceback
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lark

from autobert_zero.errors import LanguageError

from .language import GRAMMAR_PATH, Language, default_language
from .ops import DEFAULT_OPS, INPUTS, OpSpec

ENTRY_POINT_GROUP = "autobert_zero.ops"
"""The entry-point group of op plugins (`[project.entry-points."autobert_zero.ops"] name = "module"`)."""
RECORD_FORMAT = "abz-language-1"
OP_NAME = re.compile(r"[a-z_][a-z0-9_]*\Z")
RESERVED = frozenset({*INPUTS, "attention", "backbone", "return", "conv", "kernel", "dilation", "light", "depthwise",
                      "sepconv"})
"""Words of the built-in grammar that an op cannot be named."""
CONSENT = "--trust-language-code (abz) or trust_remote_code=True (Python)"

_TRUST: contextvars.ContextVar[bool] = contextvars.ContextVar("abz_trust_language_code", default=False)
_KNOWN: dict[str, Language] = {}
"""Languages built in this process, by sha256: a record naming one of them needs no consent and no rebuild."""
_MODULES: dict[str, OpModule] = {}
"""Op modules executed in this process, by the sha256 of their source (or plugin identity): never run twice."""


@dataclass(frozen=True)
class OpModule:
    """What an op module defines (see the module doc), and its entry for the record."""

    specs: dict[str, OpSpec]
    impls: dict[str, Callable[..., Any]]
    grammar: str | None
    record: dict[str, Any]


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def language_sha256(grammar_sha256: str, ops_sha256: str | None) -> str:
    """The identity of a language from its parts' sha256s."""
    return sha256_text(json.dumps({"grammar": grammar_sha256, "ops": ops_sha256}, sort_keys=True))


# ---------------------------------------------------------------------------------------------------
# consent


@contextlib.contextmanager
def trust_language_code(trust: bool = True) -> Iterator[None]:
    """Within the block, languages rebuilt from records may run the op code they carry (when `trust`)."""
    token = _TRUST.set(trust or _TRUST.get())
    try:
        yield
    finally:
        _TRUST.reset(token)


def code_trusted() -> bool:
    """Whether the current block runs under `trust_language_code`."""
    return _TRUST.get()


# ---------------------------------------------------------------------------------------------------
# op modules


def _execute(source: str, filename: str, name: str, where: str) -> types.ModuleType:
    """Run op-module `source` as a fresh module (its text kept in linecache, so `inspect.getsource` of its
    functions works even when it came from a record); any exception is a `LanguageError` naming the file."""
    module = types.ModuleType(name)
    module.__file__ = filename
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    sys.modules[name] = module
    try:
        exec(compile(source, filename, "exec"), module.__dict__)
    except Exception as error:
        sys.modules.pop(name, None)
        raise LanguageError(f"{where}: the op module {filename} raised {_failure(error, filename)} while it was "
                            f"imported; fix it (it must define OPS and IMPLS, see grammar/loading.py)") from None
    return module


def _failure(error: BaseException, filename: str) -> str:
    """`Type: message (line N)`, N the last line of `filename` in the traceback."""
    line = getattr(error, "lineno", None) if isinstance(error, SyntaxError) else None
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename == filename:
            line = frame.lineno
    message = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
    return f"{type(error).__name__}{': ' + message if message else ''}{f' (line {line})' if line else ''}"


def read_op_module(module: Any, where: str, record: dict[str, Any]) -> OpModule:
    """The ops of `module` (a module or any object with the protocol's attributes), checked."""
    label = record.get("file") or record.get("module") or record.get("plugin")
    specs_value = getattr(module, "OPS", None)
    impls_value = getattr(module, "IMPLS", None)
    if specs_value is None or impls_value is None:
        raise LanguageError(f"{where}: the op module {label} defines no {'OPS' if specs_value is None else 'IMPLS'}; "
                            "an op module defines OPS (a list of OpSpec) and IMPLS (op name → implementation)")
    if isinstance(specs_value, Mapping):
        specs_value = list(specs_value.values())
    if not isinstance(specs_value, list | tuple) or not all(isinstance(s, OpSpec) for s in specs_value):
        raise LanguageError(f"{where}: {label}: OPS must be a list of autobert_zero.grammar.OpSpec")
    if not isinstance(impls_value, Mapping) or not all(isinstance(k, str) and callable(v)
                                                       for k, v in impls_value.items()):
        raise LanguageError(f"{where}: {label}: IMPLS must be a dict of op name → callable implementation")
    grammar = getattr(module, "GRAMMAR", None)
    if grammar is not None and not isinstance(grammar, str):
        raise LanguageError(f"{where}: {label}: GRAMMAR must be the grammar text (a str)")
    specs: dict[str, OpSpec] = {}
    for spec in specs_value:
        if spec.name in DEFAULT_OPS:
            raise LanguageError(f"{where}: {label} defines op {spec.name!r}, which is a built-in op; a language cannot "
                                "shadow a built-in op: give yours another name")
        if not OP_NAME.match(spec.name) or spec.name in RESERVED:
            raise LanguageError(f"{where}: {label}: op name {spec.name!r} is not allowed (lower-case letters, digits "
                                f"and _, not one of {', '.join(sorted(RESERVED))})")
        if spec.name in specs:
            raise LanguageError(f"{where}: {label} defines op {spec.name!r} twice in OPS")
        if spec.arity not in (1, 2):
            raise LanguageError(f"{where}: {label}: op {spec.name!r} has arity {spec.arity}; ops take 1 or 2 operands")
        specs[spec.name] = spec
    shadowed = sorted(set(impls_value) & set(DEFAULT_OPS))
    if shadowed:
        raise LanguageError(f"{where}: {label}: IMPLS gives an implementation for the built-in op "
                            f"{', '.join(map(repr, shadowed))}; a language cannot replace a built-in op")
    missing, extra = sorted(set(specs) - set(impls_value)), sorted(set(impls_value) - set(specs))
    if missing:
        raise LanguageError(f"{where}: {label}: op {', '.join(map(repr, missing))} has an OpSpec in OPS but no "
                            "implementation in IMPLS")
    if extra:
        raise LanguageError(f"{where}: {label}: IMPLS implements {', '.join(map(repr, extra))}, which OPS does not "
                            "define")
    return OpModule(specs, dict(impls_value), grammar, record)


def _module_name(sha: str) -> str:
    return f"autobert_zero_language_ops_{sha[:16]}"


def op_module_from_file(path: str | Path, where: str) -> OpModule:
    """The op module of a `.py` file (run once per distinct source in a process)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise LanguageError(f"{where}: op module file not found: {file} (expected a .py file defining OPS and IMPLS)")
    try:
        source = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise LanguageError(f"{where}: op module {file} is not UTF-8 text") from None
    return _op_module_from_source(source, str(file.resolve()), None, where)


def module_already_run(path: Path) -> bool:
    """Whether this process has run an op module with the source `path` holds now."""
    try:
        return sha256_text(Path(path).read_text(encoding="utf-8")) in _MODULES
    except (OSError, UnicodeDecodeError):
        return False


def _op_module_from_source(source: str, file: str | None, module: str | None, where: str) -> OpModule:
    sha = sha256_text(source)
    known = _MODULES.get(sha)
    if known is not None:
        return known
    filename = file or f"<abz language ops {sha[:16]}>"
    executed = _execute(source, filename, _module_name(sha), where)
    record = {"module": module, "file": file, "source": source, "sha256": sha}
    found = read_op_module(executed, where, record)
    _MODULES[sha] = found
    return found


def op_module_from_name(name: str, where: str) -> OpModule:
    """The op module importable as `name` (its source is recorded; it must be self-contained to travel)."""
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name is not None and (name == error.name or name.startswith(f"{error.name}.")):
            raise LanguageError(f"{where}: op module {name!r} is not importable (no module named {error.name!r}); "
                                "give a .py file path or an installed module name") from None
        raise LanguageError(f"{where}: the op module {name} raised {_failure(error, '')} while it was imported"
                            ) from None
    except Exception as error:
        raise LanguageError(f"{where}: the op module {name} raised {_failure(error, getattr(error, 'filename', ''))} "
                            "while it was imported") from None
    source = _module_source(module, where, name)
    sha = sha256_text(source)
    if sha in _MODULES:
        return _MODULES[sha]
    found = read_op_module(module, where, {"module": name, "file": getattr(module, "__file__", None),
                                           "source": source, "sha256": sha})
    _MODULES[sha] = found
    return found


def _module_source(module: types.ModuleType, where: str, label: str) -> str:
    file = getattr(module, "__file__", None)
    try:
        if file is None:
            raise OSError("no source file")
        return Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise LanguageError(f"{where}: the source of op module {label} cannot be read ({error}); it is recorded "
                            "with everything the language makes") from None


def installed_plugins() -> dict[str, importlib.metadata.EntryPoint]:
    """The installed op plugins by name (entry points of `ENTRY_POINT_GROUP`)."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def op_module_from_plugin(name: str, where: str) -> OpModule:
    """The op module of the installed plugin `name`."""
    plugins = installed_plugins()
    entry = plugins.get(name)
    if entry is None:
        have = ", ".join(sorted(plugins)) or "none"
        raise LanguageError(f"{where}: no op plugin named {name!r} is installed (entry points of the group "
                            f"{ENTRY_POINT_GROUP!r}; installed: {have}); install it with pip or name an op module "
                            "with language.ops")
    distribution = entry.dist.name if entry.dist is not None else None
    version = entry.dist.version if entry.dist is not None else None
    try:
        loaded = entry.load()
    except Exception as error:
        raise LanguageError(f"{where}: op plugin {name!r} ({entry.value}) raised {_failure(error, '')} while it was "
                            "loaded") from None
    module = sys.modules.get(entry.module)
    source = _module_source(module, where, entry.module) if module is not None else ""
    sha = sha256_text(json.dumps({"plugin": name, "version": version, "source": sha256_text(source)}, sort_keys=True))
    if sha in _MODULES:
        return _MODULES[sha]
    found = read_op_module(loaded, where, {"plugin": name, "distribution": distribution, "version": version,
                                           "module": entry.value, "sha256": sha})
    _MODULES[sha] = found
    return found


# ---------------------------------------------------------------------------------------------------
# languages


def extend_grammar(text: str, names: list[str]) -> str:
    """`text` with `names` added as alternatives of its rule `op` (written `!op: ...` and its `|` lines)."""
    match = re.search(r"^!op:[^\n]*\n(?:[ \t]+\|[^\n]*\n)*", text, re.M)
    if match is None:
        raise LanguageError("the grammar has no rule `!op:` to add the op module's ops to; name a grammar file")
    added = "".join(f'   | "{name}"\n' for name in names)
    return text[:match.end()] + added + text[match.end():]


def build_language(grammar: str | None, grammar_file: str | None, ops: OpModule | None, where: str) -> Language:
    """The language of a grammar text (None: the op module's `GRAMMAR`, else the built-in grammar plus the
    module's ops) and an op module; the built-in language when both are None."""
    if grammar is None and ops is None:
        return default_language()
    if grammar is None:
        assert ops is not None
        grammar = ops.grammar if ops.grammar is not None else extend_grammar(
            GRAMMAR_PATH.read_text(encoding="utf-8"), list(ops.specs))
    grammar_sha = sha256_text(grammar)
    ops_sha = ops.record["sha256"] if ops is not None else None
    sha = language_sha256(grammar_sha, ops_sha)
    known = _KNOWN.get(sha)
    if known is not None:
        return known
    record = {"format": RECORD_FORMAT, "sha256": sha,
              "grammar": {"text": grammar, "file": grammar_file, "sha256": grammar_sha},
              "ops": ops.record if ops is not None else None}
    label = grammar_file or "the grammar"
    try:
        language = Language(grammar, {**DEFAULT_OPS, **(ops.specs if ops else {})},
                            impls=ops.impls if ops else None, record=record)
    except lark.exceptions.LarkError as error:
        first = str(error).strip().splitlines()
        raise LanguageError(f"{where}: {label} is not a valid Lark grammar: {first[0][:300] if first else error}"
                            + "".join(f" {line.strip()}" for line in first[1:4])) from None
    except LanguageError as error:
        raise LanguageError(f"{where}: {label}: {error}") from None
    unimplemented = [op for op in language.op_names if op not in DEFAULT_OPS and op not in language.impls]
    if unimplemented:
        raise LanguageError(f"{where}: {label} names op {', '.join(map(repr, unimplemented))} without an "
                            "implementation; define it in the op module's OPS and IMPLS")
    _KNOWN[sha] = language
    return language


def load_language(grammar: str | Path | None = None, ops: str | Path | None = None, plugin: str | None = None,
                  *, where: str = "language") -> Language:
    """The language named by a grammar file, an op module (a `.py` path or an importable module name) and/or
    an installed plugin (not both ops and plugin); all None: the built-in language. The user named these
    sources, so their code runs without further consent."""
    if ops is not None and plugin is not None:
        raise LanguageError(f"{where}: give language.ops or language.plugin, not both")
    text = file = None
    if grammar is not None:
        path = Path(grammar).expanduser()
        if not path.is_file():
            raise LanguageError(f"{where}: grammar file not found: {path} (expected a .lark file such as a copy of "
                                f"{GRAMMAR_PATH.name})")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise LanguageError(f"{where}: grammar file {path} is not UTF-8 text") from None
        file = str(path.resolve())
    module = None
    if ops is not None:
        module = (op_module_from_file(ops, where) if is_path(str(ops)) else op_module_from_name(str(ops), where))
    elif plugin is not None:
        module = op_module_from_plugin(plugin, where)
    return build_language(text, file, module, where)


def is_path(ops: str) -> bool:
    """Whether `language.ops` names a file (ends in .py or holds a path separator) rather than a module."""
    return ops.endswith(".py") or "/" in ops or "\\" in ops


def language_from_record(record: Any, *, where: str, trust: bool | None = None) -> Language:
    """The language a record describes (None: the built-in language). A record holding op source runs it only
    with consent (`trust`, else `trust_language_code()`), unless this process built the same language already;
    a damaged record (its sha256s do not match its texts) is refused."""
    if record is None:
        return default_language()
    grammar, ops, sha = _check_record(record, where)
    known = _KNOWN.get(sha)
    if known is not None:
        return known
    if ops is None:
        module = None
    elif "plugin" in ops:
        module = op_module_from_plugin(str(ops["plugin"]), where)
        if module.record["sha256"] != ops["sha256"]:
            raise LanguageError(f"{where} was made with op plugin {ops['plugin']!r} version {ops.get('version')}; "
                                f"the installed one (version {module.record.get('version')}) differs (sha256 "
                                f"{str(ops['sha256'])[:12]} -> {module.record['sha256'][:12]}); install the recorded "
                                "version")
    else:
        trusted = code_trusted() if trust is None else trust
        if not trusted and str(ops["sha256"]) not in _MODULES:
            name = Path(str(ops.get("file") or ops.get("module") or "the op module")).name
            raise LanguageError(f"{where} carries a custom language whose op code ({name}, sha256 "
                                f"{str(ops['sha256'])[:12]}) would run to load it; it runs only with {CONSENT}. "
                                "Give that only for a folder whose source you trust")
        module = _op_module_from_source(str(ops["source"]), None, ops.get("module"), where)
        module = OpModule(module.specs, module.impls, module.grammar, dict(ops))
    language = build_language(grammar["text"], grammar.get("file"), module, where)
    if language.sha256 != sha:
        raise LanguageError(f"{where}: the recorded language rebuilds to sha256 {str(language.sha256)[:12]}, not the "
                            f"recorded {sha[:12]}")
    return language


def _check_record(record: Any, where: str) -> tuple[dict[str, Any], dict[str, Any] | None, str]:
    def bad(problem: str) -> LanguageError:
        return LanguageError(f"{where}: the language record is damaged ({problem}); restore it from the folder it "
                             "came with")

    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        raise bad(f"expected a mapping with \"format\": \"{RECORD_FORMAT}\"")
    grammar, ops, sha = record.get("grammar"), record.get("ops"), record.get("sha256")
    if not isinstance(grammar, dict) or not isinstance(grammar.get("text"), str) or not isinstance(sha, str):
        raise bad("no grammar text or sha256")
    if sha256_text(grammar["text"]) != grammar.get("sha256"):
        raise bad("the grammar text does not match its sha256")
    if ops is not None:
        if not isinstance(ops, dict) or not isinstance(ops.get("sha256"), str):
            raise bad("ops is neither null nor a mapping with a sha256")
        if "plugin" in ops:
            if not isinstance(ops["plugin"], str):
                raise bad("the plugin name is not a string")
        elif not isinstance(ops.get("source"), str) or sha256_text(ops["source"]) != ops["sha256"]:
            raise bad("the op module source does not match its sha256")
    if language_sha256(grammar["sha256"], ops["sha256"] if ops else None) != sha:
        raise bad("its sha256 does not match its parts")
    return grammar, ops, sha


def record_hashes(record: Mapping[str, Any] | None) -> dict[str, str | None]:
    """The parts of a record a run identity compares: grammar and ops sha256 (empty for the built-in language)."""
    if record is None:
        return {}
    ops = record.get("ops")
    return {"language.grammar_sha256": record["grammar"]["sha256"],
            "language.ops_sha256": ops["sha256"] if isinstance(ops, Mapping) else None}


def language_changes(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[str]:
    """What differs between two records, in words ("language grammar sha256 a -> b", ...); [] when equal."""
    old, new = record_hashes(before), record_hashes(after)
    if old == new:
        return []
    if not old or not new:
        return [f"language {'built-in' if not old else 'custom'} -> {'built-in' if not new else 'custom'}"]
    return [f"language {key.split('.')[1].replace('_sha256', '')} sha256 {str(old[key])[:12]} -> {str(new[key])[:12]}"
            for key in old if old[key] != new[key]]

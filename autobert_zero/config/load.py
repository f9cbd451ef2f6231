"""Strict loading of configs: YAML → `Config`, and the batch arithmetic DeepSpeed needs.

Every mistake a config file can hold is a `ConfigError` that names the file and the YAML path:
duplicate keys (PyYAML silently keeps the last one, we do not), a document nested too deeply or blown up
through aliases, unknown keys (with the closest valid key from difflib), values of the wrong type, out of
range or not among the choices (pydantic validates the mapping against the dataclasses of `schema.py`; its
first error becomes one sentence naming the key and what it expects), and a global batch size that does not
equal micro_batch_size × gradient_accumulation_steps × world_size.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import os
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

import pydantic
import yaml
from pydantic_core import SchemaValidator

from autobert_zero.config.paths import resolve_shipped, shipped_names
from autobert_zero.config.schema import POPULATION_STRATEGIES, Config
from autobert_zero.errors import AbzError, ConfigError
from autobert_zero.json_files import SHOWN_CHARS, shorten

_FLOAT_RE = re.compile(
    r"""^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+|\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |\.(?:inf|Inf|INF))$|^\.(?:nan|NaN|NAN)$""",
    re.X,
)


MAX_YAML_DEPTH = 32
"""Deepest nesting of mappings/sequences a config may have (ours use 3)."""
MAX_YAML_NODES = 20_000
"""Most values a config may expand to, aliases counted at their full size (ours hold ~60)."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that also reads `5e-4` as a float (YAML 1.1 wants `5.0e-4`), and bounds the document:
    nesting depth, and the size it expands to through aliases (an "alias bomb" of nested `*a` lists is
    refused as soon as the expanded count passes the limit; a recursive alias is refused at once)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._sizes: dict[int, int] = {}  # id(node) → expanded size, once the node is complete

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None and id(target) not in self._sizes:
                raise yaml.composer.ComposerError(None, None, f"recursive alias *{event.anchor} (it refers to a "
                                                  f"value that contains itself)", event.start_mark)
            return super().compose_node(parent, index)  # type: ignore[return-value]
        start = self.peek_event().start_mark
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"values nest deeper than {MAX_YAML_DEPTH} levels",
                                              start)
        node = super().compose_node(parent, index)
        self._depth -= 1
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        size = 1 + sum(self._sizes.get(id(child), 1) for child in children)
        if size > MAX_YAML_NODES:
            raise yaml.composer.ComposerError(None, None, f"the document expands to more than {MAX_YAML_NODES} "
                                              f"values (through aliases?)", start)
        self._sizes[id(node)] = size
        return node  # type: ignore[return-value]


_StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))


def _check_duplicates(node: yaml.Node, where: str, path: str = "") -> None:
    """Raise on a key given twice in any mapping of the YAML node tree."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            full = f"{path}.{_key_text(key)}" if path else _key_text(key)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(f"{where}: duplicate key '{full}' at line {line} (first given at line {seen[key]})")
            seen[key] = line
            _check_duplicates(value_node, where, full)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_duplicates(item, where, f"{path}[{i}]")


def parse_yaml(text: str, where: str) -> dict[str, Any]:
    """Parse YAML text into a mapping, rejecting duplicate keys; `where` names the source in errors."""
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}
        _check_duplicates(node, where)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{where}: not valid YAML: nested too deeply") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of sections at the top level, got {type(data).__name__}")
    return data


UNKNOWN_KEY = ("unexpected_keyword_argument", "extra_forbidden", "invalid_key")
"""pydantic's error types for a key the schema does not have (`invalid_key`: a key that is not a string)."""
BOUNDS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal", "too_short", "too_long")
"""pydantic's error types for a value of the right type out of its declared bounds."""


@functools.cache
def _validator() -> SchemaValidator:
    """pydantic's validator of `Config`, strict (see `Config.__pydantic_config__`) except that a section may
    be given as a mapping: strict mode wants a dataclass instance there (pydantic-core issue 712), so the
    dataclass nodes of the core schema are made lax; their fields stay strict."""
    schema = copy.deepcopy(pydantic.TypeAdapter(Config).core_schema)

    def accept_mappings(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "dataclass":
                node["strict"] = False
            for value in node.values():
                accept_mappings(value)
        elif isinstance(node, list):
            for value in node:
                accept_mappings(value)

    accept_mappings(schema)
    return SchemaValidator(schema)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _keys(cls: type) -> list[str]:
    """The YAML keys of section class `cls` (internal fields such as `Config.source` are not keys)."""
    return [f.name for f in dataclasses.fields(cls) if not f.metadata.get("internal")]


def _bare(tp: Any) -> Any:
    """`tp` without `Annotated[...]` and without `| None`."""
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (Union, types.UnionType):
        options = [option for option in typing.get_args(tp) if option is not type(None)]
        if len(options) == 1:
            return _bare(options[0])
    return tp


def _type_name(tp: Any) -> str:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(option) for option in args)
    if origin is Literal:
        return " | ".join(map(repr, args))
    if origin is list:
        return f"list[{_type_name(args[0])}]"
    if tp is type(None):
        return "null"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "a mapping of keys"
    return str(getattr(tp, "__name__", tp))


def _bounds(tp: Any) -> str:
    """The declared bounds of annotation `tp` in words (`positive and at most 65,536`, `in [0, 1)`, ...)."""
    while typing.get_origin(tp) in (Union, types.UnionType):
        tp = next(option for option in typing.get_args(tp) if option is not type(None))
    metadata = typing.get_args(tp)[1:] if typing.get_origin(tp) is typing.Annotated else ()
    b = {key: getattr(m, key) for m in metadata for key in ("gt", "ge", "lt", "le", "min_length")
         if getattr(m, key, None) is not None}
    gt, ge, lt, le = b.get("gt"), b.get("ge"), b.get("lt"), b.get("le")
    if "min_length" in b:
        return f"a list of at least {b['min_length']} value{'s' if b['min_length'] != 1 else ''}"
    if ge is not None and lt is not None:
        return f"in [{ge}, {lt})"
    low = "positive" if gt == 0 else "non-negative" if ge == 0 else None
    if low:
        return f"{low} and at most {le:,}" if le is not None else low
    if ge is not None and le is not None:
        return f"between {ge:,} and {le:,}"
    return " and ".join(f"{word} {b[key]:,}" for key, word in
                        (("gt", "more than"), ("ge", "at least"), ("lt", "less than"), ("le", "at most")) if key in b)


def _key_text(key: Any) -> str:
    """A YAML key as an error message shows it: cut by `shorten` when longer than `SHOWN_CHARS` (a key, like
    a value, may be megabytes long)."""
    text = str(key)
    return text if len(text) <= SHOWN_CHARS else shorten(text)


def _unknown_key(cls: type, prefix: str, key: Any, where: str) -> ConfigError:
    keys = _keys(cls)
    text = _key_text(key)
    close = difflib.get_close_matches(text, keys, n=1) if len(str(key)) <= SHOWN_CHARS else []
    dot = f"{prefix}." if prefix else ""
    hint = f"; did you mean '{dot}{close[0]}'?" if close else ""
    return ConfigError(f"{where}: unknown key '{dot}{text}' in {prefix or 'the top level'}{hint} "
                       f"(valid keys: {', '.join(keys)})")


def _config_error(exc: pydantic.ValidationError, tp: Any, value: Any, where: str, key: str = "") -> ConfigError:
    """One sentence for pydantic's first error (an unknown key first): the YAML path of the value (from
    annotation `tp` and `value` at path `key`), what it must be and what it is."""
    errors = exc.errors(include_url=False)
    error = next((e for e in errors if e["type"] in UNKNOWN_KEY), errors[0])
    for part in error["loc"]:  # follow the path while it names fields and list items (not union members)
        bare = _bare(tp)
        if dataclasses.is_dataclass(bare) and part in _keys(bare):  # type: ignore[arg-type]
            tp, value = _hints(bare)[part], value.get(part) if isinstance(value, dict) else None  # type: ignore[arg-type]
            key = f"{key}.{part}" if key else str(part)
        elif typing.get_origin(bare) is list and isinstance(part, int) and isinstance(value, list):
            tp, value, key = typing.get_args(bare)[0], value[part], f"{key}[{part}]"
        elif typing.get_origin(bare) is dict and isinstance(value, dict) and part in value:
            return ConfigError(f"{where}: '{key}' has the key {shorten(part)}; keys must be str")
        elif dataclasses.is_dataclass(bare) and error["type"] in UNKNOWN_KEY:
            return _unknown_key(bare, key, part, where)  # type: ignore[arg-type]
        else:
            break
    kind = error["type"]
    if kind == "finite_number":
        wanted = "a finite number"
    elif kind == "literal_error":
        wanted = f"one of {_type_name(tp).replace(' | ', ', ')}"
    elif kind in BOUNDS:
        wanted = _bounds(tp)
    else:
        return ConfigError(f"{where}: '{key}' must be {_type_name(tp)}, got {shorten(value)} "
                           f"({type(value).__name__})")
    return ConfigError(f"{where}: '{key}' must be {wanted}, got {shorten(value)}")


def check_field(cls: type, name: str, value: Any, key: str, where: str) -> None:
    """Check one value against the annotation of field `name` of schema class `cls`, as the loader would
    (for command-line values that mirror config keys, e.g. `--vocab-size` and data.vocab_size)."""
    tp = _hints(cls)[name]
    try:
        pydantic.TypeAdapter(tp, config=Config.__pydantic_config__).validate_python(value)
    except pydantic.ValidationError as exc:
        raise _config_error(exc, tp, value, where, key) from None


def build_config(data: dict[str, Any], where: str) -> Config:
    """Validate a parsed mapping against `Config`: unknown keys, bad types, bounds and choices raise.
    A section given as null (`audit:` with nothing under it) takes its defaults, as an absent one does."""
    for key in data:  # pydantic would accept the internal fields (`source`)
        if key not in _keys(Config):
            raise _unknown_key(Config, "", key, where)
    data = {key: {} if value is None and dataclasses.is_dataclass(_hints(Config)[key]) else value
            for key, value in data.items()}
    try:
        return typing.cast(Config, _validator().validate_python(data))
    except pydantic.ValidationError as exc:
        raise _config_error(exc, Config, data, where) from None


def default_population(cfg: Config) -> list[str]:
    """What an empty `supernet.population` means: `genotype`, the search's `seed_genotypes` and the shipped
    genotypes (each file once), keeping those with the layer count of `genotype`. A file that cannot be read
    is kept, for the supernet run to report it."""
    from autobert_zero.config.language import language_from_config
    from autobert_zero.grammar import load_genotype

    language = language_from_config(cfg)

    def layers(path: str) -> int | None:
        try:
            return load_genotype(resolve_shipped(path), language=language).num_layers
        except (AbzError, OSError):
            return None

    shipped = [name for name in shipped_names("genotypes") if name.endswith(".abz")]
    candidates: dict[Path, str] = {}
    for path in [cfg.genotype, *cfg.search.seed_genotypes, *shipped]:
        candidates.setdefault(resolve_shipped(path).resolve(), path)
    host = layers(cfg.genotype)
    return [path for path in candidates.values() if host is None or layers(path) in (host, None)]


@dataclass(frozen=True)
class BatchPlan:
    """The batch arithmetic of one loop, derived once: global = micro × accumulation × world size."""

    micro_batch_size: int
    gradient_accumulation_steps: int
    world_size: int

    @property
    def train_batch_size(self) -> int:
        return self.micro_batch_size * self.gradient_accumulation_steps * self.world_size

    def deepspeed_keys(self) -> dict[str, int]:
        return {
            "train_batch_size": self.train_batch_size,
            "train_micro_batch_size_per_gpu": self.micro_batch_size,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
        }


def world_size_from_env() -> int:
    """Number of processes of this run as the launcher announced it (1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def batch_plan(cfg: Config, loop: str, world_size: int | None = None) -> BatchPlan:
    """The batch plan of loop `pretrain` or `finetune`; raises if the config's numbers disagree."""
    section = getattr(cfg, loop)
    plan = BatchPlan(section.micro_batch_size, section.gradient_accumulation_steps,
                     world_size or world_size_from_env())
    equation = (f"micro_batch_size × gradient_accumulation_steps × world_size = {plan.micro_batch_size} × "
                f"{plan.gradient_accumulation_steps} × {plan.world_size} = {plan.train_batch_size}")
    if section.batch_size is not None and section.batch_size != plan.train_batch_size:
        raise ConfigError(f"{cfg.source}: {loop}.batch_size = {section.batch_size} but {equation}; "
                          f"train_batch_size must equal micro_batch × grad_accum × world_size")
    for key, ours in plan.deepspeed_keys().items():
        given = cfg.deepspeed.get(key)
        if given is not None and given != ours:
            raise ConfigError(f"{cfg.source}: deepspeed.{key} = {shorten(given)} conflicts with {ours} derived from "
                              f"{loop} ({equation}); remove it from the deepspeed section or make them agree")
    return plan


def physical_memory() -> int:
    """Bytes of RAM of this machine (0 if unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def check_model_fits(hidden: int, intermediate: int, vocab: int, positions: int, where: str,
                     bytes_per_parameter: int = 16) -> None:
    """Refuse sizes whose smallest model (embeddings and one layer) cannot fit in this machine's RAM;
    16 bytes per parameter = fp32 weights, gradients and AdamW's two moments (4 for a saved model)."""
    parameters = (vocab + positions) * hidden + 4 * hidden * hidden + 2 * hidden * intermediate
    need, have = parameters * bytes_per_parameter, physical_memory()
    if have and need > have:
        raise ConfigError(f"{where}: the model sizes (hidden {hidden:,}, intermediate {intermediate:,}, vocabulary "
                          f"{vocab:,}, positions {positions:,}) need at least {need / 2**30:,.1f} GiB for "
                          f"{parameters:,} parameters, more than this machine's {have / 2**30:,.1f} GiB of RAM")


def check_consistency(cfg: Config) -> None:
    """Cross-field checks that no single field can make."""
    m = cfg.model
    check_model_fits(m.hidden_size, m.intermediate_size, cfg.data.vocab_size, m.max_position_embeddings, cfg.source)
    if m.hidden_size % m.num_attention_heads:
        raise ConfigError(f"{cfg.source}: model.hidden_size = {m.hidden_size} is not divisible by "
                          f"model.num_attention_heads = {m.num_attention_heads}")
    for key, length in (("data.max_seq_length", cfg.data.max_seq_length),
                        ("finetune.max_seq_length", cfg.finetune.max_seq_length)):
        if length > m.max_position_embeddings:
            raise ConfigError(f"{cfg.source}: {key} = {length} exceeds model.max_position_embeddings = "
                              f"{m.max_position_embeddings}")
    if cfg.data.max_seq_length < 8:
        raise ConfigError(f"{cfg.source}: data.max_seq_length must be at least 8, got {cfg.data.max_seq_length}")
    if cfg.evaluate.glue_task is not None:
        from autobert_zero.train.data.glue import get_task  # imports `datasets`: only for a config that names a task

        try:
            get_task(cfg.evaluate.glue_task)
        except AbzError as exc:
            raise ConfigError(f"{cfg.source}: evaluate.glue_task: {shorten(str(exc), 300)}") from None
    stage = cfg.deepspeed.get("zero_optimization", {}).get("stage", 0)
    if stage not in (0, 1, 2, 3) or isinstance(stage, bool):
        raise ConfigError(f"{cfg.source}: deepspeed.zero_optimization.stage = {shorten(stage)}; expected 0, 1, 2 or 3 "
                          f"(3 for `abz pretrain` and `abz finetune` only)")
    if cfg.deepspeed.get("fp16", {}).get("enabled"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"{cfg.source}: deepspeed.fp16.enabled is true but there is no GPU; "
                              f"DeepSpeed's CPU accelerator supports fp32 and bf16 only (use bf16)")


def config_from_dict(data: dict[str, Any], source: str = "<config>", world_size: int | None = None) -> Config:
    """Build and check a `Config` from a parsed mapping (as `load_config` does from a file); an empty
    `supernet.population` of the `population`/`fair` strategies becomes `default_population`."""
    cfg = build_config(data, source)
    cfg.source = source
    from autobert_zero.config.language import absolute_paths

    cfg.language = absolute_paths(cfg.language)
    if cfg.supernet.strategy in POPULATION_STRATEGIES and not cfg.supernet.population:
        cfg.supernet.population = default_population(cfg)
    check_consistency(cfg)
    batch_plan(cfg, "pretrain", world_size)
    batch_plan(cfg, "finetune", world_size)
    return cfg


def load_language_section(path: str | os.PathLike[str]) -> Config:
    """`--language FILE`: a YAML file holding a `language:` section (alone, or in a whole config, whose other
    sections are checked but not used); a config whose other keys keep their defaults, paths made absolute."""
    from autobert_zero.config.language import absolute_paths

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--language file not found: {p} (expected a YAML file with a `language:` section)")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text (expected a YAML file with a `language:` section)") from None
    data = parse_yaml(text, str(p))
    if "language" not in data:
        raise ConfigError(f"{p}: no `language:` section (expected keys grammar, ops, plugin under `language:`)")
    cfg = Config(language=build_config(data, str(p)).language, source=str(p))
    cfg.language = absolute_paths(cfg.language)
    return cfg


def load_config(path: str | os.PathLike[str], world_size: int | None = None) -> Config:
    """Load a YAML config file strictly (a relative path missing from the working directory may name a shipped
    config, `configs/tiny.yaml`); `world_size` defaults to the launcher's WORLD_SIZE (or 1)."""
    p = resolve_shipped(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p} (expected a YAML file such as configs/tiny.yaml)")
    data = p.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{p}:{line}: byte 0x{data[exc.start]:02x} is not UTF-8 text (expected a UTF-8 YAML file)"
                          ) from None
    return config_from_dict(parse_yaml(text, str(p)), str(p), world_size)

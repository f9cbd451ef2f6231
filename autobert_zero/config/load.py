"""Strict loading of training configs: YAML → `TrainConfig`, and the batch arithmetic DeepSpeed needs.

Every mistake a config file can hold is a `ConfigError` that names the file and the YAML path:
duplicate keys (PyYAML silently keeps the last one, we do not), unknown keys (with the closest valid key
from difflib), values of the wrong type or out of range, and a global batch size that does not equal
micro_batch_size × gradient_accumulation_steps × world_size.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml

from autobert_zero.config.schema import TrainConfig
from autobert_zero.errors import ConfigError

T = TypeVar("T")

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
            full = f"{path}.{key}" if path else str(key)
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


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "").replace("NoneType", "null")


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    """Return `value` if it fits the annotation `tp` (ints are accepted for floats), else raise."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _coerce(value, option, key, where)
            except ConfigError:
                continue
    elif tp is type(None):
        if value is None:
            return None
    elif origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, list):
            return [_coerce(v, item_tp, f"{key}[{i}]", where) for i, v in enumerate(value)]
    elif origin is dict:
        if isinstance(value, dict):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(float(value)):
                raise ConfigError(f"{where}: '{key}' must be a finite number, got {value!r}")
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{where}: '{key}' must be {_type_name(tp)}, got {value!r} ({type(value).__name__})")


def check_bound(value: Any, metadata: Any, key: str, where: str) -> None:
    """Raise unless `value` meets a field's declared constraint (`check`, and `min`/`max` if given)."""
    check = metadata["check"]
    ok = {
        "> 0": lambda v: v > 0,
        ">= 0": lambda v: v >= 0,
        "in [0, 1)": lambda v: 0 <= v < 1,
    }[check](value)
    low, high = metadata.get("min"), metadata.get("max")
    if ok and (low is None or value >= low) and (high is None or value <= high):
        return
    if low is not None:
        wanted = f"between {low:,} and {high:,}" if high is not None else f"at least {low:,}"
    elif high is not None:
        wanted = f"{'positive' if check == '> 0' else 'non-negative'} and at most {high:,}"
    else:
        wanted = check
    raise ConfigError(f"{where}: '{key}' must be {wanted}, got {value!r}")


def check_field(cls: type, name: str, value: Any, key: str, where: str) -> None:
    """Check one value against the constraint declared on field `name` of schema class `cls`
    (for command-line values that mirror config keys, e.g. `--vocab-size` and data.vocab_size)."""
    (f,) = [f for f in dataclasses.fields(cls) if f.name == name]
    if "check" in f.metadata:
        check_bound(value, f.metadata, key, where)


def build_section(cls: type[T], data: Any, where: str, prefix: str = "") -> T:
    """Build dataclass `cls` from a YAML mapping, strictly: unknown keys, bad types and bounds raise."""
    section = prefix or "the top level"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: '{prefix}' must be a mapping of keys, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            full = f"{prefix}.{key}" if prefix else str(key)
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean '{prefix + '.' if prefix else ''}{close[0]}'?" if close else ""
            valid = ", ".join(fields)
            raise ConfigError(f"{where}: unknown key '{full}' in {section}{hint} (valid keys: {valid})")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in data:
            continue
        key = f"{prefix}.{name}" if prefix else name
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = build_section(tp, data[name], where, key)  # type: ignore[arg-type]
            continue
        value = _coerce(data[name], tp, key, where)
        if value is not None and "check" in f.metadata:
            check_bound(value, f.metadata, key, where)
        kwargs[name] = value
    return cls(**kwargs)


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


def batch_plan(cfg: TrainConfig, loop: str, world_size: int | None = None) -> BatchPlan:
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
            raise ConfigError(f"{cfg.source}: deepspeed.{key} = {given} conflicts with {ours} derived from "
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


def check_consistency(cfg: TrainConfig) -> None:
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
    stage = cfg.deepspeed.get("zero_optimization", {}).get("stage", 0)
    if stage not in (0, 1, 2):
        raise ConfigError(f"{cfg.source}: deepspeed.zero_optimization.stage = {stage!r}; expected 0, 1 or 2 "
                          f"(ZeRO-3 partitions weights, which the HF export here does not gather)")
    if cfg.deepspeed.get("fp16", {}).get("enabled"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"{cfg.source}: deepspeed.fp16.enabled is true but there is no GPU; "
                              f"DeepSpeed's CPU accelerator supports fp32 and bf16 only (use bf16)")


def config_from_dict(data: dict[str, Any], source: str = "<config>", world_size: int | None = None) -> TrainConfig:
    """Build and check a `TrainConfig` from a parsed mapping (as `load_config` does from a file)."""
    cfg = build_section(TrainConfig, data, source)
    cfg.source = source
    check_consistency(cfg)
    batch_plan(cfg, "pretrain", world_size)
    batch_plan(cfg, "finetune", world_size)
    return cfg


def load_config(path: str | os.PathLike[str], world_size: int | None = None) -> TrainConfig:
    """Load a YAML config file strictly; `world_size` defaults to the launcher's WORLD_SIZE (or 1)."""
    p = Path(path)
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

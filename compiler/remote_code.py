"""Remote code for a saved Hugging Face folder: it then loads with plain transformers and torch.

`write_remote_code(model, folder)` runs after every `save_pretrained` of the package's models. It

1. describes the model's backbone as JSON (`compiled_genotype`, format in `portable_backbone`), read from
   the built modules themselves: each attention mixer's program (the exact steps its compiled core runs)
   and each conv mixer's type, kernel and dilation — so the description matches the weights just saved;
2. copies the portable modules (`PORTABLE_MODULES`) verbatim into the folder — the package builds its own
   models from these same files, which is what keeps the exported code and the package from drifting apart —
   and writes `portable_custom_ops.py` with the source of any custom op (`op_source`);
3. adds `compiled_genotype` and `auto_map` (AutoConfig and the AutoModel classes → the copied classes) to
   the folder's `config.json`.

Then `AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True)` works where autobert_zero is not
installed. A model this cannot describe (a supernet, a custom op whose source cannot travel) is saved
without remote code, with a warning that says why.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from autobert_zero.errors import CompileError
from autobert_zero.grammar import Language

from . import portable_layers
from .conv import ConvMixer
from .layers import AttentionMixer
from .op_impls import op_impl
from .op_source import NotPortableError, custom_ops_module
from .portable_backbone import FORMAT
from .portable_ops import BUILTIN_IMPLS

logger = logging.getLogger(__name__)

PORTABLE_MODULES = ("portable_ops", "portable_core", "portable_layers", "portable_heads", "portable_config",
                    "portable_backbone", "portable_model")
"""The package's modules an exported folder runs, copied verbatim (plus a generated `portable_custom_ops`)."""
CUSTOM_OPS_MODULE = "portable_custom_ops"
AUTO_MAP = {
    "AutoConfig": "portable_config.AutoBertZeroConfig",
    "AutoModel": "portable_model.AutoBertZeroModel",
    "AutoModelForMaskedLM": "portable_model.AutoBertZeroForMaskedLM",
    "AutoModelForSequenceClassification": "portable_model.AutoBertZeroForSequenceClassification",
}
"""`config.json`'s `auto_map`: which class of the copied modules each Auto class loads."""
SOURCE_FOLDER = Path(__file__).resolve().parent


def write_remote_code(model: nn.Module, folder: str | os.PathLike[str]) -> bool:
    """Make the saved `folder` of `model` loadable with `trust_remote_code=True`; False (and a warning) when
    the model cannot be described, in which case the folder is left as `save_pretrained` wrote it."""
    try:
        compiled = compiled_genotype(model)
        impls = custom_impls(compiled, getattr(getattr(model, "config", None), "resolved_language", None))
        custom = custom_ops_module(impls) if impls else None
    except NotPortableError as error:
        logger.warning("%s is saved without remote code (it loads only where autobert_zero is installed): %s",
                       folder, error)
        return False
    target = Path(folder)
    for name in (*PORTABLE_MODULES, CUSTOM_OPS_MODULE):
        shutil.copyfile(SOURCE_FOLDER / f"{name}.py", target / f"{name}.py")
    if custom is not None:  # the package's copy is empty
        (target / f"{CUSTOM_OPS_MODULE}.py").write_text(custom, encoding="utf-8")
    config_file = target / "config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config.update(compiled_genotype=compiled, auto_map=AUTO_MAP)
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return True


def compiled_genotype(model: nn.Module) -> dict[str, Any]:
    """The `compiled_genotype` JSON of `model`'s backbone; `NotPortableError` for a backbone other than the
    plain stack of attention / conv layers that `portable_backbone` builds (e.g. a supernet)."""
    base = getattr(model, "base_model", model)
    encoder = getattr(base, "encoder", None)
    if type(encoder) is not portable_layers.Encoder:
        raise NotPortableError(f"its encoder is a {type(encoder).__name__}, not a plain Encoder")
    config = getattr(model, "config", None)
    if config is None:
        raise NotPortableError("it has no config")
    head_dim = int(config.hidden_size // config.num_attention_heads)
    graphs: dict[str, dict[str, Any]] = {}
    layers: list[dict[str, Any]] = []
    for index, layer in enumerate(encoder.layers):
        if type(layer) is not portable_layers.EncoderLayer:
            raise NotPortableError(f"layer {index} is a {type(layer).__name__}, not a plain EncoderLayer")
        mixer = layer.mixer
        if type(mixer) in (AttentionMixer, portable_layers.AttentionMixer):
            assert isinstance(mixer, portable_layers.AttentionMixer)
            if mixer.program is None or mixer.roles != mixer.projections or mixer.head_dim != head_dim:
                raise NotPortableError(f"layer {index}'s attention has projections {mixer.roles} and runs "
                                       f"{mixer.projections} at head dim {mixer.head_dim}")
            layers.append({"attention": _graph_key(graphs, dict(mixer.program), index)})
        elif type(mixer) in (ConvMixer, portable_layers.ConvMixer):
            assert isinstance(mixer, portable_layers.ConvMixer)
            layers.append({"conv": mixer.kind, "kernel": mixer.kernel_size, "dilation": mixer.dilation})
        else:
            raise NotPortableError(f"layer {index}'s token mixer is a {type(mixer).__name__}")
    return {"format": FORMAT, "head_dim": head_dim, "graphs": graphs, "layers": layers}


def custom_impls(compiled: dict[str, Any], language: Callable[[], Language] | None = None) -> dict[str, Any]:
    """The implementations (the model's language's own, `Language.impls`, else registered now, `op_impls`) of the
    ops `compiled` uses that are not the built-in ones; `NotPortableError` for an op without one."""
    ops = {step["op"] for program in compiled["graphs"].values() for step in program["steps"]
           if step["step"] == "op"}
    own = language().impls if language is not None else {}
    try:
        impls = {op: own[op] if op in own else op_impl(op) for op in sorted(ops)}
    except CompileError as error:
        raise NotPortableError(str(error)) from None
    return {op: impl for op, impl in impls.items() if BUILTIN_IMPLS.get(op) is not impl}


def _graph_key(graphs: dict[str, dict[str, Any]], program: dict[str, Any], index: int) -> str:
    """The key of `program` in `graphs` (its graph name; another name if a different program has it)."""
    name = str(program.get("name", f"layer{index}"))
    key = name if graphs.get(name, program) == program else f"{name}@layer{index}"
    graphs.setdefault(key, program)
    return key

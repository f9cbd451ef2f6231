"""`compiled_genotype` (JSON in an exported `config.json`) → the `Encoder` (shipped in every exported folder).

An exported folder has no grammar to parse the genotype text with, so the exporter (`remote_code`) writes
the genotype pre-parsed and lowered, read from the model's own modules:

    {"format": "autobert-zero/compiled-genotype/1", "head_dim": 64,
     "graphs": {"a2": PROGRAM, ...},
     "layers": [{"conv": "light", "kernel": 65, "dilation": 1}, {"attention": "a2"}, ...]}

Each attention graph is the program its compiled core runs (`portable_core`: the inputs and the list of
op / mask / dropout / fused-attention steps); each conv layer gives its type, kernel and dilation. This module
interprets that data with the same modules the package builds (`portable_layers`, `portable_core`), and
imports only torch, transformers and the standard library.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from .portable_core import ProgramError, build_core
from .portable_layers import PROJECTION_ROLES, AttentionMixer, ConvMixer, Encoder, EncoderLayer, LayerSettings

FORMAT = "autobert-zero/compiled-genotype/1"
"""The version tag of the `compiled_genotype` format; a reader refuses other versions."""


class CompiledGenotypeError(ValueError):
    """`compiled_genotype` cannot be built: the message names `config.json` and the bad entry."""


def build_compiled_encoder(compiled: Mapping[str, Any] | None, settings: LayerSettings,
                           impls: Mapping[str, Callable[..., torch.Tensor]]) -> Encoder:
    """The `Encoder` that `compiled` describes at the sizes of `settings`; weights left uninitialised."""
    if not compiled:
        raise CompiledGenotypeError("config.json has no compiled_genotype: this folder was not written by an "
                                    "AutoBERT-Zero export, so plain transformers cannot build its backbone")
    if compiled.get("format") != FORMAT:
        raise CompiledGenotypeError(f"config.json: compiled_genotype has format {compiled.get('format')!r}; this "
                                    f"code reads {FORMAT!r}")
    head_dim = settings.hidden_size // settings.num_attention_heads
    if compiled.get("head_dim") != head_dim:
        raise CompiledGenotypeError(f"config.json: compiled_genotype was lowered at head dim "
                                    f"{compiled.get('head_dim')}, but hidden_size / num_attention_heads is {head_dim}")
    graphs = compiled.get("graphs", {})
    cores: dict[str, nn.Module] = {}
    layers: list[EncoderLayer] = []
    for index, spec in enumerate(compiled.get("layers", ())):
        try:
            layers.append(_layer(spec, settings, graphs, cores, impls))
        except (ProgramError, KeyError, TypeError, ValueError) as error:
            raise CompiledGenotypeError(f"config.json: compiled_genotype layer {index} ({spec!r}) cannot be "
                                        f"built: {error}") from None
    if not layers:
        raise CompiledGenotypeError("config.json: compiled_genotype has no layers")
    final_norm = (nn.LayerNorm(settings.hidden_size, eps=settings.layer_norm_eps)
                  if settings.layer_norm_position == "pre" else None)
    return Encoder(layers, final_norm)


def _layer(spec: Mapping[str, Any], settings: LayerSettings, graphs: Mapping[str, Any], cores: dict[str, nn.Module],
           impls: Mapping[str, Callable[..., torch.Tensor]]) -> EncoderLayer:
    if set(spec) == {"attention"}:
        name = spec["attention"]
        program = graphs[name]
        if name not in cores:
            cores[name] = build_core(program, settings.hidden_size // settings.num_attention_heads, impls)
        roles = tuple(PROJECTION_ROLES[n.upper()] for n in program["inputs"])
        mixer = AttentionMixer(settings, roles)
        mixer.set_core(cores[name], program)
        return EncoderLayer("attention", mixer, settings)
    if set(spec) == {"conv", "kernel", "dilation"}:
        conv = ConvMixer(spec["conv"], int(spec["kernel"]), int(spec["dilation"]), settings.hidden_size,
                         settings.num_attention_heads)
        return EncoderLayer("conv", conv, settings)
    raise ValueError("a layer is {\"attention\": GRAPH} or {\"conv\": TYPE, \"kernel\": K, \"dilation\": R}")

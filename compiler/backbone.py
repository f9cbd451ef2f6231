"""The backbone: a genotype's layers compiled into an `Encoder` module.

`build_encoder(genotype, settings)` is the compiler's entry point from IR to modules; `build_layer` builds
one position. Sizes are checked here (a `CompileError` names the bad value). Modules are created with
PyTorch's default initialisation switched off (`transformers.initialization.no_init_weights`) and then
initialised once, BERT's way (`init_encoder_module`), or left for the HF model's `post_init`. The modules
(`Encoder`, layers, mixers) are `portable_layers`' classes, which exported folders build from `config.json`.
"""

from __future__ import annotations

from typing import TypeVar

import torch
from torch import nn
from transformers.activations import ACT2FN
from transformers.initialization import no_init_weights

from autobert_zero.errors import CompileError
from autobert_zero.grammar import AttentionLayer, ConvLayer, Genotype, Language

from .analysis import check_sizes, language_of
from .conv import ConvMixer
from .layers import AttentionMixer, EncoderLayer, LayerSettings
from .portable_layers import Encoder, init_encoder_module

__all__ = ["Encoder", "build_encoder", "build_layer", "check_settings", "init_encoder_module"]

LAYER_NORM_POSITIONS = ("post", "pre")
M = TypeVar("M", bound=nn.Module)


def check_settings(settings: LayerSettings) -> None:
    """Raise `CompileError` when the sizes and options cannot build a backbone."""
    check_sizes(settings)
    if settings.layer_norm_position not in LAYER_NORM_POSITIONS:
        raise CompileError(f"layer_norm_position={settings.layer_norm_position!r}; expected one of "
                           f"{', '.join(map(repr, LAYER_NORM_POSITIONS))}")
    if settings.hidden_act not in ACT2FN:
        raise CompileError(f"hidden_act={settings.hidden_act!r} is not a known activation; expected one of "
                           f"{', '.join(sorted(ACT2FN))}")
    for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
        value = getattr(settings, name)
        if not 0.0 <= value < 1.0:
            raise CompileError(f"{name}={value} must be in [0, 1)")


def build_layer(
    genotype: Genotype,
    index: int,
    settings: LayerSettings,
    *,
    language: Language | None = None,
    init_std: float | None = 0.02,
) -> EncoderLayer:
    """Layer `index` of `genotype` as a module; `init_std=None` leaves the weights uninitialised.

    `language` defaults to the genotype's own (`Genotype.language`), else the default language.
    """
    check_settings(settings)
    with no_init_weights():
        layer = _layer(genotype, index, settings, language_of(genotype, language))
    return _initialise(layer, init_std)


def build_encoder(
    genotype: Genotype,
    settings: LayerSettings,
    *,
    language: Language | None = None,
    init_std: float | None = 0.02,
) -> Encoder:
    """All layers of `genotype` as an `Encoder`; `init_std=None` leaves the weights uninitialised.

    Weights are created on the current default device (meta inside HF's `from_pretrained`). `language`
    defaults to the genotype's own (`Genotype.language`), else the default language.
    """
    check_settings(settings)
    if not genotype.layers:
        raise CompileError("the genotype has no layers")
    language = language_of(genotype, language)
    with no_init_weights():
        layers = [_layer(genotype, i, settings, language) for i in range(genotype.num_layers)]
        final_norm = (nn.LayerNorm(settings.hidden_size, eps=settings.layer_norm_eps)
                      if settings.layer_norm_position == "pre" else None)
    return _initialise(Encoder(layers, final_norm), init_std)


def _layer(genotype: Genotype, index: int, settings: LayerSettings, language: Language) -> EncoderLayer:
    if not 0 <= index < genotype.num_layers:
        raise CompileError(f"layer index {index} is out of range for a {genotype.num_layers}-layer genotype")
    spec = genotype.layers[index]
    mixer: nn.Module
    if isinstance(spec, ConvLayer):
        mixer = ConvMixer(spec, settings.hidden_size, settings.num_attention_heads)
    elif isinstance(spec, AttentionLayer):
        try:
            graph = genotype.graph(spec.graph)
        except KeyError:
            raise CompileError(f"layer {index} uses undefined attention graph {spec.graph!r}") from None
        mixer = AttentionMixer(graph, settings, language)
    else:
        raise CompileError(f"layer {index} is neither an attention nor a conv layer: {spec!r}")
    return EncoderLayer(spec.branch, mixer, settings)


def _initialise(module: M, init_std: float | None) -> M:
    if init_std is not None:
        with torch.no_grad():
            for sub in module.modules():
                init_encoder_module(sub, init_std)
    return module

"""BIWS: the bi-branch weight-sharing supernet, in the spirit of once-for-all's small verb-named API.

Every layer position holds both branches of the search space:

- an **attention branch** — the query/key/value/output projections, shared by every attention graph at
  that position (primitive ops carry no weights); the active graph's compiled core is swapped in from the
  core cache, so switching candidates costs no recompilation;
- a **conv branch** — per conv type, one kernel at the largest size the language allows; a smaller kernel
  is its centre slice, and a dilation spreads the same taps;

plus the FFN and the two LayerNorms of the position, shared by both branches — or, with
`per_branch=("norm",)` / `("norm", "ffn")`, one set per branch (`layers.i.conv_norm`, `layers.i.conv_ffn`
serve the conv branch), so that the very different output scales of attention graphs and convolutions
do not fight over one LayerNorm. `"uses_v"` in `per_branch` is the few-shot split of the attention branch
by one coarse choice (see the ranking audit in benchmarks/RESULTS.md): graphs that do not read V get
projections of their own (`layers.i.attention_nov`: query, key, output), so that value-free graphs and
value-reading ones do not co-adapt one set. The parameter count is bounded whatever graphs the space holds.

    supernet = AutoBertZeroSupernetForMaskedLM(config)   # config.genotype fixes the layer count
    supernet.activate(genotype)                          # forward() now runs this candidate
    child = supernet.extract(genotype)                   # a stand-alone AutoBertZeroForMaskedLM

`shared_weight` is the one rule that says which shared weight (and which taps of it) a stand-alone
weight inherits; `extract` and every test go through it.
"""

from __future__ import annotations

import copy
import random
import re

import torch
from torch import nn
from transformers.initialization import no_init_weights

from autobert_zero.errors import SupernetError
from autobert_zero.grammar import (
    AttentionGraph,
    AttentionLayer,
    ConvLayer,
    Genotype,
    Language,
    sample_genotype,
)

from .backbone import Encoder, check_settings
from .conv import ConvMixer
from .hf_config import AutoBertZeroConfig
from .hf_model import AutoBertZeroForMaskedLM
from .layers import BRANCH_ROLES, PROJECTION_ROLES, AttentionMixer, EncoderLayer, FeedForward, LayerSettings

_CONV_WEIGHT = re.compile(r"^(?P<prefix>(?:.*\.)?layers\.\d+\.conv)\.(?P<role>.+)$")
_POSITION_WEIGHT = re.compile(r"^(?P<prefix>(?:.*\.)?layers\.(?P<index>\d+)\.)(?P<part>ffn|norm|attention)\."
                              r"(?P<rest>.+)$")
PER_BRANCH_PARTS = ("ffn", "norm", "uses_v")
"""The supernet's few-shot splits: `ffn` / `norm` held once per branch (the conv branch's copy is
`conv_{part}`); `uses_v`: attention projections held once for graphs that read V and once for graphs
that do not (`attention_nov`)."""
NO_V_ROLES = ("query", "key")
"""Projections of the value-free attention set (`uses_v` split); its output projection comes with it."""


def attention_set(graph: AttentionGraph, per_branch: tuple[str, ...]) -> str:
    """The projection set at a position that attention graph `graph` uses: `attention_nov` under the `uses_v`
    split when the graph does not read V, else `attention` (the one rule `shared_weight` and `activate` share)."""
    return "attention_nov" if "uses_v" in per_branch and "V" not in graph.inputs_used else "attention"


def centre_taps(kernel: int, max_kernel: int) -> slice:
    """The taps of a size-`kernel` kernel inside the stored size-`max_kernel` one (both odd)."""
    centre = max_kernel // 2
    return slice(centre - kernel // 2, centre + kernel // 2 + 1)


def shared_weight(name: str, genotype: Genotype, max_kernel: int,
                  per_branch: tuple[str, ...] = ()) -> tuple[str, slice | None]:
    """Which supernet weight the stand-alone weight `name` of `genotype` inherits, and which taps of it.

    Attention projections, FFN, norms, embeddings and heads keep their names (one set per position).
    A conv weight `layers.i.conv.ROLE` lives under its type, `layers.i.conv.KIND.ROLE`; its kernel
    `depthwise_weight` is the centre `kernel` taps of the stored `max_kernel` ones. With `per_branch`
    parts, a conv layer's `layers.i.PART.*` comes from `layers.i.conv_PART.*`, and (`uses_v`) the
    projections of a graph that does not read V from `layers.i.attention_nov.*`.
    """
    position = _POSITION_WEIGHT.match(name)
    if position is not None:
        layer = genotype.layers[int(position["index"])]
        if position["part"] == "attention" and isinstance(layer, AttentionLayer):
            chosen = attention_set(genotype.graph(layer.graph), per_branch)
            return f"{position['prefix']}{chosen}.{position['rest']}", None
        if isinstance(layer, ConvLayer) and position["part"] in per_branch:
            return f"{position['prefix']}conv_{position['part']}.{position['rest']}", None
        return name, None
    match = _CONV_WEIGHT.match(name)
    if match is None:
        return name, None
    index = int(match["prefix"].rsplit(".", 2)[-2])
    layer = genotype.layers[index]
    if not isinstance(layer, ConvLayer):
        raise SupernetError(f"weight {name} belongs to a conv layer, but layer {index} of the genotype is "
                            f"an attention layer")
    taps = centre_taps(layer.kernel, max_kernel) if match["role"] == "depthwise_weight" else None
    return f"{match['prefix']}.{layer.kind}.{match['role']}", taps


def shared_weight_map(model: nn.Module, genotype: Genotype, max_kernel: int,
                      per_branch: tuple[str, ...] = ()) -> dict[str, tuple[str, slice | None]]:
    """`shared_weight` for every entry of a stand-alone model's state dict."""
    return {name: shared_weight(name, genotype, max_kernel, per_branch) for name in model.state_dict()}


class SharedConv(ConvMixer):
    """One conv type's branch at a position: the largest kernel, of which the active one is the centre."""

    def __init__(self, kind: str, settings: LayerSettings, max_kernel: int) -> None:
        super().__init__(ConvLayer(kind, max_kernel), settings.hidden_size, settings.num_attention_heads)
        self.max_kernel = max_kernel

    def configure(self, kernel: int, dilation: int) -> None:
        """Run the centre `kernel` taps with `dilation` from now on ('same' padding keeps the length)."""
        if kernel > self.max_kernel or kernel % 2 == 0 or kernel < 1 or dilation < 1:
            raise SupernetError(f"conv kernel={kernel} dilation={dilation} does not fit the shared "
                                f"{self.kind} kernel of {self.max_kernel} taps (odd kernels up to "
                                f"{self.max_kernel}, dilation >= 1)")
        self.kernel_size, self.dilation = kernel, dilation

    def raw_taps(self) -> torch.Tensor:
        return self.depthwise_weight[:, centre_taps(self.kernel_size, self.max_kernel)].contiguous()


class SuperLayer(EncoderLayer):
    """A position of the supernet: the attention branch, one `SharedConv` per conv type, FFN and norms."""

    def __init__(self, settings: LayerSettings, conv_types: tuple[str, ...], max_kernel: int,
                 per_branch: tuple[str, ...] = ()) -> None:
        super().__init__("attention", AttentionMixer(None, settings, roles=tuple(PROJECTION_ROLES.values())),
                         settings)
        self.conv = nn.ModuleDict({kind: SharedConv(kind, settings, max_kernel) for kind in conv_types})
        self.active_conv = conv_types[0]
        self.active_attention = "attention"
        self.per_branch = per_branch
        if "uses_v" in per_branch:
            self.attention_nov = AttentionMixer(None, settings, roles=NO_V_ROLES)
        if "ffn" in per_branch:
            self.conv_ffn = FeedForward(settings)
        if "norm" in per_branch:
            self.conv_norm = nn.ModuleDict({role: nn.LayerNorm(settings.hidden_size, eps=settings.layer_norm_eps)
                                            for role in BRANCH_ROLES["norm"]})

    @property
    def mixer(self) -> nn.Module:
        return self.get_submodule(self.active_attention if self.branch == "attention" else f"conv.{self.active_conv}")

    def active(self, part: str) -> nn.Module:
        return self.get_submodule(f"conv_{part}" if self.branch == "conv" and part in self.per_branch else part)

    def activate(self, genotype: Genotype, index: int, language: Language) -> None:
        layer = genotype.layers[index]
        if isinstance(layer, ConvLayer):
            conv = self.conv
            assert isinstance(conv, nn.ModuleDict)
            if layer.kind not in conv:
                raise SupernetError(f"layer {index + 1} is a {layer.kind!r} conv; this supernet hosts the conv "
                                    f"types {', '.join(conv)}")
            shared = conv[layer.kind]
            assert isinstance(shared, SharedConv)
            shared.configure(layer.kernel, layer.dilation)
            self.branch, self.active_conv = "conv", layer.kind
        elif isinstance(layer, AttentionLayer):
            graph = genotype.graph(layer.graph)
            self.active_attention = attention_set(graph, self.per_branch)
            attention = self.get_submodule(self.active_attention)
            assert isinstance(attention, AttentionMixer)
            attention.set_graph(graph, language)
            self.branch = "attention"
        else:  # pragma: no cover - the IR has two layer kinds
            raise SupernetError(f"layer {index + 1} is neither attention nor conv: {layer!r}")


def build_super_encoder(settings: LayerSettings, num_layers: int, language: Language,
                        per_branch: tuple[str, ...] = ()) -> Encoder:
    """The supernet's encoder, weights uninitialised (the HF model initialises them)."""
    check_settings(settings)
    unknown = sorted(set(per_branch) - set(PER_BRANCH_PARTS))
    if unknown:
        raise SupernetError(f"per_branch parts {unknown} are unknown; expected a subset of {PER_BRANCH_PARTS}")
    with no_init_weights():
        layers: list[EncoderLayer] = [
            SuperLayer(settings, language.conv_types, max(language.conv_kernels), per_branch)
            for _ in range(num_layers)
        ]
        final_norm = (nn.LayerNorm(settings.hidden_size, eps=settings.layer_norm_eps)
                      if settings.layer_norm_position == "pre" else None)
    return Encoder(layers, final_norm)


class AutoBertZeroSupernetForMaskedLM(AutoBertZeroForMaskedLM):
    """A masked-LM model whose backbone is the BIWS supernet; `forward` runs the active candidate.

    `config.genotype` is a host genotype: it fixes the number of layer positions and is the first active
    candidate. Every candidate of the language with that many layers can be hosted. `per_branch` (kept in
    the config as `supernet_per_branch`, so a saved supernet rebuilds the same way) names the position
    modules held once per branch.
    """

    def __init__(self, config: AutoBertZeroConfig, language: Language | None = None,
                 per_branch: tuple[str, ...] | None = None) -> None:
        self.language = language or config.resolved_language()
        if per_branch is not None:
            config.supernet_per_branch = list(per_branch)
        self.per_branch = tuple(getattr(config, "supernet_per_branch", ()) or ())
        host = config.parsed_genotype()
        super().__init__(config, encoder=build_super_encoder(config, host.num_layers, self.language,
                                                             self.per_branch))
        self.max_kernel = max(self.language.conv_kernels)
        self._active = host
        self.activate(host)

    @property
    def num_positions(self) -> int:
        return len(self.super_layers)

    @property
    def super_layers(self) -> list[SuperLayer]:
        encoder = self.autobert.encoder
        assert isinstance(encoder, Encoder)
        return [layer for layer in encoder.layers if isinstance(layer, SuperLayer)]

    @property
    def active(self) -> Genotype:
        """The candidate `forward` runs."""
        return self._active

    def check_hostable(self, genotype: Genotype) -> None:
        """Raise `SupernetError` naming what differs when this supernet cannot host `genotype`."""
        if genotype.num_layers != self.num_positions:
            raise SupernetError(f"the genotype has {genotype.num_layers} layers; this supernet hosts "
                                f"{self.num_positions}-layer backbones (its layer count comes from the "
                                f"supernet's genotype)")
        for index, layer in enumerate(genotype.layers):
            if isinstance(layer, ConvLayer) and (layer.kind not in self.language.conv_types
                                                 or layer.kernel > self.max_kernel):
                raise SupernetError(f"layer {index + 1}: conv {layer.kind} kernel={layer.kernel} is outside "
                                    f"this supernet (types {', '.join(self.language.conv_types)}, kernels up "
                                    f"to {self.max_kernel})")

    def activate(self, genotype: Genotype) -> None:
        """Make `genotype` the active candidate (cores come from the compiled-core cache)."""
        self.check_hostable(genotype)
        for index, layer in enumerate(self.super_layers):
            layer.activate(genotype, index, self.language)
        self._active = genotype

    def sample(self, rng: random.Random, **kwargs: object) -> Genotype:
        """A random valid candidate this supernet hosts (the seeded grammar sampler; kwargs go to it)."""
        return sample_genotype(rng, self.num_positions, language=self.language, **kwargs)

    def candidate_config(self, genotype: Genotype) -> AutoBertZeroConfig:
        """The stand-alone model config of `genotype`: this supernet's sizes, the candidate's layers."""
        config = copy.deepcopy(self.config)
        config.genotype = genotype.to_text()
        config.architectures = [AutoBertZeroForMaskedLM.__name__]
        if hasattr(config, "supernet_per_branch"):
            del config.supernet_per_branch
        return config

    def extract(self, genotype: Genotype) -> AutoBertZeroForMaskedLM:
        """A stand-alone `AutoBertZeroForMaskedLM` of `genotype` whose weights are exactly the inherited ones.

        The supernet is left unchanged (its active candidate included) and the global RNG is not consumed.
        """
        from .backbone import build_encoder

        self.check_hostable(genotype)
        config = self.candidate_config(genotype)
        reference = self.get_input_embeddings().weight
        with torch.random.fork_rng(devices=[]):
            encoder = build_encoder(genotype, config, language=self.language, init_std=None)
            child = AutoBertZeroForMaskedLM(config, encoder=encoder)
        child = child.to(device=reference.device, dtype=reference.dtype)  # type: ignore[call-arg]
        shared = self.state_dict()
        inherited: dict[str, torch.Tensor] = {}
        for name, (source, taps) in shared_weight_map(child, genotype, self.max_kernel, self.per_branch).items():
            if source not in shared:
                raise SupernetError(f"the supernet holds no weight {source} for the candidate's {name}")
            weight = shared[source]
            inherited[name] = (weight[:, taps] if taps is not None else weight).detach().clone()
        child.load_state_dict(inherited, strict=True)
        return child.train(self.training)

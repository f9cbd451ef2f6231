"""One backbone layer: a token mixer (attention graph or convolution) wrapped as in BERT, plus the FFN.

Post-LN (BERT, default):  x = LN(x + drop(mixer(x)));  x = LN(x + drop(FFN(x)))
Pre-LN (`layer_norm_position="pre"`):  x = x + drop(mixer(LN(x)));  x = x + drop(FFN(LN(x)))

Weight names are derived from (layer index, branch, role) by `role_path` and `BRANCH_ROLES`, the single
table the module attributes below are named from; weight sharing (BIWS) keys its shared weights the same
way, e.g. `layers.3.attention.query`, `layers.4.conv.depthwise_weight`, `layers.3.ffn.up`,
`layers.3.norm.mixer`.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn
from transformers.activations import ACT2FN

from autobert_zero.grammar import AttentionGraph, Language

from .attention_core import compile_core
from .conv import CONV_ROLES

PROJECTION_ROLES = {"Q": "query", "K": "key", "V": "value"}
"""The attention role of each graph input's projection (a graph without V has no `value`)."""

BRANCH_ROLES: dict[str, tuple[str, ...]] = {
    "attention": (*PROJECTION_ROLES.values(), "output"),
    "conv": CONV_ROLES,
    "ffn": ("up", "down"),
    "norm": ("mixer", "ffn"),
}
"""Every weight role of a layer, by branch. `attention`/`conv` are the token-mixer branches; `ffn` and
`norm` exist at every position whatever its mixer."""


def role_path(index: int, branch: str, role: str) -> str:
    """Path of a weight role relative to the encoder: `layers.{index}.{branch}.{role}`.

    A module path (its parameters are `.weight`/`.bias` below it) or, for the conv kernel
    `depthwise_weight`, the parameter itself.
    """
    if role not in BRANCH_ROLES.get(branch, ()):
        raise KeyError(f"no role {role!r} in branch {branch!r}; roles: {BRANCH_ROLES}")
    return f"layers.{index}.{branch}.{role}"


class LayerSettings(Protocol):
    """The sizes and options a layer is built from (`AutoBertZeroConfig` has them all)."""

    hidden_size: int
    num_attention_heads: int
    intermediate_size: int
    hidden_act: str
    hidden_dropout_prob: float
    attention_probs_dropout_prob: float
    layer_norm_eps: float
    layer_norm_position: str
    fused_attention: bool


class AttentionMixer(nn.Module):
    """Q/K/V projections → split heads → compiled core → merge heads → output Linear.

    The projections are separate from the core: a stand-alone layer creates only the projections its
    graph reads (`roles=None`), a supernet position creates all of them (`roles=("query", "key", "value")`)
    and switches graphs with `set_graph`, which swaps the (cached, parameter-free) core.
    """

    def __init__(self, graph: AttentionGraph | None, settings: LayerSettings, language: Language | None = None,
                 roles: tuple[str, ...] | None = None) -> None:
        super().__init__()
        hidden, heads = settings.hidden_size, settings.num_attention_heads
        self.num_heads = heads
        self.head_dim = hidden // heads
        self.dropout_p = float(settings.attention_probs_dropout_prob)
        self.fused = bool(settings.fused_attention)
        if roles is None:
            if graph is None:
                raise ValueError("AttentionMixer needs a graph or the projection roles to create")
            roles = tuple(PROJECTION_ROLES[name] for name in graph.inputs_used)
        self.roles = roles
        for role in roles:
            self.add_module(role, nn.Linear(hidden, hidden))
        self.output = nn.Linear(hidden, hidden)
        self.projections: tuple[str, ...] = ()
        self.core: nn.Module | None = None
        if graph is not None:
            self.set_graph(graph, language)

    def set_graph(self, graph: AttentionGraph, language: Language | None = None) -> None:
        """Run `graph` from now on: its projections and its compiled core (from the core cache)."""
        projections = tuple(PROJECTION_ROLES[name] for name in graph.inputs_used)
        missing = [role for role in projections if role not in self.roles]
        if missing:
            raise ValueError(f"graph {graph.name!r} reads projections {missing} that this mixer lacks")
        self.core = compile_core(graph, self.head_dim, fused=self.fused, language=language)
        self.projections = projections

    def forward(self, hidden: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """hidden (B, L, h), keep (B, L) bool → (B, L, h)."""
        assert self.core is not None, "no attention graph set"
        batch, length, width = hidden.shape
        heads = [
            getattr(self, role)(hidden).view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)
            for role in self.projections
        ]  # each (B, H, L, dh)
        out = self.core(*heads, keep, self.dropout_p if self.training else 0.0)  # (B, H, L, dh)
        out = out.transpose(1, 2).reshape(batch, length, width)  # (B, L, h)
        return self.output(out)


class FeedForward(nn.Module):
    """Position-wise FFN: Linear(h→intermediate) → activation → Linear(intermediate→h)."""

    def __init__(self, settings: LayerSettings) -> None:
        super().__init__()
        self.up = nn.Linear(settings.hidden_size, settings.intermediate_size)
        self.act = ACT2FN[settings.hidden_act]
        self.down = nn.Linear(settings.intermediate_size, settings.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.down(self.act(self.up(hidden)))


class EncoderLayer(nn.Module):
    """A token mixer registered under its branch name (`attention` or `conv`), the FFN and two norms."""

    def __init__(self, branch: str, mixer: nn.Module, settings: LayerSettings) -> None:
        super().__init__()
        self.branch = branch
        self.add_module(branch, mixer)
        self.ffn = FeedForward(settings)
        self.norm = nn.ModuleDict({
            role: nn.LayerNorm(settings.hidden_size, eps=settings.layer_norm_eps) for role in BRANCH_ROLES["norm"]
        })
        self.dropout = nn.Dropout(settings.hidden_dropout_prob)
        self.pre_norm = settings.layer_norm_position == "pre"

    @property
    def mixer(self) -> nn.Module:
        return self.get_submodule(self.branch)

    def active(self, part: str) -> nn.Module:
        """The module serving `part` ("ffn" or "norm") in this forward (a supernet may keep one per branch)."""
        return self.get_submodule(part)

    def forward(self, hidden: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """hidden (B, L, h), keep (B, L) bool → (B, L, h)."""
        mixer, norm, ffn = self.mixer, self.active("norm"), self.active("ffn")
        assert isinstance(norm, nn.ModuleDict)
        if self.pre_norm:
            hidden = hidden + self.dropout(mixer(norm["mixer"](hidden), keep))
            return hidden + self.dropout(ffn(norm["ffn"](hidden)))
        hidden = norm["mixer"](hidden + self.dropout(mixer(hidden, keep)))
        return norm["ffn"](hidden + self.dropout(ffn(hidden)))

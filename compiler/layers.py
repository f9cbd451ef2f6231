"""One backbone layer: a token mixer (attention graph or convolution) wrapped as in BERT, plus the FFN.

Post-LN (BERT, default):  x = LN(x + drop(mixer(x)));  x = LN(x + drop(FFN(x)))
Pre-LN (`layer_norm_position="pre"`):  x = x + drop(mixer(LN(x)));  x = x + drop(FFN(LN(x)))

The modules themselves live in `portable_layers` (the code exported folders run); this module adds what
needs the genotype IR: an `AttentionMixer` built from an `AttentionGraph` through the core compiler.

Weight names are derived from (layer index, branch, role) by `role_path` and `BRANCH_ROLES`, the single
table the module attributes below are named from; weight sharing (BIWS) keys its shared weights the same
way, e.g. `layers.3.attention.query`, `layers.4.conv.depthwise_weight`, `layers.3.ffn.up`,
`layers.3.norm.mixer`.
"""

from __future__ import annotations

from autobert_zero.grammar import AttentionGraph, Language

from . import portable_layers
from .attention_core import compile_graph
from .portable_layers import CONV_ROLES, NORM_ROLES, PROJECTION_ROLES, EncoderLayer, FeedForward, LayerSettings

__all__ = ["BRANCH_ROLES", "PROJECTION_ROLES", "AttentionMixer", "EncoderLayer", "FeedForward", "LayerSettings",
           "role_path"]

BRANCH_ROLES: dict[str, tuple[str, ...]] = {
    "attention": (*PROJECTION_ROLES.values(), "output"),
    "conv": CONV_ROLES,
    "ffn": ("up", "down"),
    "norm": NORM_ROLES,
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


class AttentionMixer(portable_layers.AttentionMixer):
    """`portable_layers.AttentionMixer` built from an attention graph (its core from the core cache).

    A stand-alone layer creates only the projections its graph reads (`roles=None`), a supernet position
    creates all of them (`roles=("query", "key", "value")`) and switches graphs with `set_graph`, which swaps
    the (cached, parameter-free) core.
    """

    def __init__(self, graph: AttentionGraph | None, settings: LayerSettings, language: Language | None = None,
                 roles: tuple[str, ...] | None = None) -> None:
        if roles is None:
            if graph is None:
                raise ValueError("AttentionMixer needs a graph or the projection roles to create")
            roles = tuple(PROJECTION_ROLES[name] for name in graph.inputs_used)
        super().__init__(settings, roles)
        self.fused = bool(settings.fused_attention)
        if graph is not None:
            self.set_graph(graph, language)

    def set_graph(self, graph: AttentionGraph, language: Language | None = None) -> None:
        """Run `graph` from now on: its projections and its compiled core (from the core cache)."""
        missing = [PROJECTION_ROLES[name] for name in graph.inputs_used if PROJECTION_ROLES[name] not in self.roles]
        if missing:
            raise ValueError(f"graph {graph.name!r} reads projections {missing} that this mixer lacks")
        self.set_core(*compile_graph(graph, self.head_dim, fused=self.fused, language=language))

"""The backbone's modules: token mixers, FFN, one layer, the encoder (shipped in every exported folder).

Post-LN (BERT, default):  x = LN(x + drop(mixer(x)));  x = LN(x + drop(FFN(x)))
Pre-LN (`layer_norm_position="pre"`):  x = x + drop(mixer(LN(x)));  x = x + drop(FFN(LN(x)))

A layer's token mixer is an `AttentionMixer` (projections around a compiled attention core) or a
`ConvMixer` (GLU, then a `light`, `depthwise` or `sepconv` convolution over positions). These classes know
nothing of genotypes: the package's `layers`, `conv` and `backbone` build them from the IR, an exported
folder's `portable_backbone` builds them from `config.json`. This module is portable (torch, transformers and
the standard library only) and `remote_code` copies it verbatim into exported folders: both run this code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn
from transformers.activations import ACT2FN

PROJECTION_ROLES = {"Q": "query", "K": "key", "V": "value"}
"""The attention role of each graph input's projection (a graph without V has no `value`)."""
CONV_KINDS = ("light", "depthwise", "sepconv")
"""The convolution types `ConvMixer` implements (the grammar's `CONV_TYPES`)."""
CONV_ROLES = ("input", "depthwise_weight", "pointwise", "output")
NORM_ROLES = ("mixer", "ffn")


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

    `roles` are the projections to create (`query`, `key`, `value`); `set_core` installs the parameter-free
    core and the program it runs, whose inputs say which projections feed it.
    """

    def __init__(self, settings: LayerSettings, roles: tuple[str, ...]) -> None:
        super().__init__()
        hidden, heads = settings.hidden_size, settings.num_attention_heads
        self.num_heads = heads
        self.head_dim = hidden // heads
        self.dropout_p = float(settings.attention_probs_dropout_prob)
        self.roles = roles
        for role in roles:
            self.add_module(role, nn.Linear(hidden, hidden))
        self.output = nn.Linear(hidden, hidden)
        self.projections: tuple[str, ...] = ()
        self.core: nn.Module | None = None
        self.program: Mapping[str, Any] | None = None

    def set_core(self, core: nn.Module, program: Mapping[str, Any]) -> None:
        """Run `core` (compiled from `program`) from now on; its inputs come from the matching projections."""
        projections = tuple(PROJECTION_ROLES[name.upper()] for name in program["inputs"])
        missing = [role for role in projections if role not in self.roles]
        if missing:
            raise ValueError(f"attention graph {program.get('name')!r} reads projections {missing} that this "
                             f"mixer lacks")
        self.core, self.program, self.projections = core, program, projections

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


class ConvMixer(nn.Module):
    """Convolution token mixer: Linear(h→2h) → GLU → depthwise conv over positions → Linear(h→h).

    Types: `light` — LightConv (Wu et al. 2019), one kernel per head, (heads, k), softmax-normalised over its
    taps and shared by the head's channels; `depthwise` — one kernel per channel, (hidden, k); `sepconv` —
    the depthwise conv, then a pointwise Linear(h→h). Dilation `r` with 'same' padding r·(k−1)/2 keeps the
    length. Padded positions are set to zero after the GLU, so zero padding inside a sequence looks exactly
    like the zero padding at its end. Parameter names are the roles (`input`, `depthwise_weight`, ...).
    """

    def __init__(self, kind: str, kernel: int, dilation: int, hidden_size: int, num_heads: int) -> None:
        super().__init__()
        if kind not in CONV_KINDS or kernel < 1 or kernel % 2 == 0 or dilation < 1:
            raise ValueError(f"conv {kind} kernel={kernel} dilation={dilation} cannot be built: expected a type "
                             f"among {', '.join(CONV_KINDS)}, an odd positive kernel and a positive dilation")
        self.kind = kind
        self.kernel_size = kernel
        self.dilation = dilation
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.input = nn.Linear(hidden_size, 2 * hidden_size)
        rows = num_heads if kind == "light" else hidden_size
        self.depthwise_weight = nn.Parameter(torch.empty(rows, kernel))
        self.pointwise = nn.Linear(hidden_size, hidden_size) if kind == "sepconv" else None
        self.output = nn.Linear(hidden_size, hidden_size)

    @property
    def padding(self) -> int:
        """'Same' padding of the kernel in use: the output has the input's length."""
        return self.dilation * (self.kernel_size - 1) // 2

    def raw_taps(self) -> torch.Tensor:
        """The stored kernel taps in use, (heads, k) for `light`, else (hidden, k).

        A supernet's shared conv overrides this to slice the centre of its largest kernel.
        """
        return self.depthwise_weight

    def kernel(self) -> torch.Tensor:
        """The per-channel kernel for `F.conv1d` with groups=hidden: (hidden, 1, k)."""
        taps = self.raw_taps()
        if self.kind == "light":
            taps = torch.softmax(taps, dim=-1)  # (heads, k)
            taps = taps.repeat_interleave(self.hidden_size // self.num_heads, dim=0)  # (hidden, k)
        return taps.unsqueeze(1)  # (hidden, 1, k)

    def forward(self, hidden: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """hidden (B, L, h), keep (B, L) bool → (B, L, h)."""
        x = F.glu(self.input(hidden), dim=-1)  # (B, L, h)
        x = x.masked_fill(~keep.unsqueeze(-1), 0.0)  # zero padded positions before mixing them in
        y = F.conv1d(x.transpose(1, 2), self.kernel(), padding=self.padding, dilation=self.dilation,
                     groups=self.hidden_size)  # (B, h, L)
        y = y.transpose(1, 2)  # (B, L, h)
        if self.pointwise is not None:
            y = self.pointwise(y)
        return self.output(y)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, kernel={self.kernel_size}, dilation={self.dilation}"


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
            role: nn.LayerNorm(settings.hidden_size, eps=settings.layer_norm_eps) for role in NORM_ROLES
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


class Encoder(nn.Module):
    """The stack of layers (`layers.{i}`), plus a final LayerNorm in pre-LN mode."""

    gradient_checkpointing = False
    """While training, run each layer under `torch.utils.checkpoint` (its activations recomputed in the backward
    pass instead of kept: less memory, about one more forward of compute, the same results). Set by
    `model.gradient_checkpointing_enable()` (transformers) or by abz's `model.gradient_checkpointing` key."""

    def __init__(self, layers: list[EncoderLayer], final_norm: nn.LayerNorm | None) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.final_norm = final_norm

    def forward(
        self, hidden: torch.Tensor, keep: torch.Tensor, all_hidden: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """hidden (B, L, h), keep (B, L) bool (True at real tokens) → (B, L, h).

        With `all_hidden`, each layer's input and the final output are appended to it (HF's
        `output_hidden_states`).
        """
        checkpoint = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for layer in self.layers:
            if all_hidden is not None:
                all_hidden.append(hidden)
            if checkpoint:  # transformers sets `_gradient_checkpointing_func` (its kwargs); else torch's default
                run = getattr(self, "_gradient_checkpointing_func", None)
                hidden = (run(layer, hidden, keep) if run is not None
                          else torch.utils.checkpoint.checkpoint(layer, hidden, keep, use_reentrant=False))
            else:
                hidden = layer(hidden, keep)
        if self.final_norm is not None:
            hidden = self.final_norm(hidden)
        if all_hidden is not None:
            all_hidden.append(hidden)
        return hidden


def init_encoder_module(module: nn.Module, std: float) -> None:
    """BERT's initialisation of one module: Linear/kernels N(0, std), zero biases, LayerNorm 1/0.

    Uses `nn.init` functions looked up at call time, so inside HF's weight initialisation loaded
    weights stay untouched.
    """
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, ConvMixer):
        nn.init.normal_(module.depthwise_weight, mean=0.0, std=std)

"""autobert_zero.compiler — genotype IR → torch.fx attention cores → modules → Hugging Face models.

Read in data-flow order: `padding` (where masks go) and `lowering` (fusing scaled dot-product attention)
serve `attention_core` (an attention graph as an fx GraphModule); `conv` and `layers` build one layer;
`backbone` builds the encoder from a genotype; `heads`, `hf_config`, `hf_model` are the Hugging Face
shells; `supernet` is the BIWS weight-sharing supernet built from the same layers (activate / sample /
extract, and `shared_weight`, the one rule of which shared weight a candidate inherits); `from_bert`
converts a `BertModel`; `analysis` and `functional_id` (the functional fingerprint) measure a genotype;
`op_impls` holds the torch implementation of each primitive op.

The `portable_*` modules are the runtime the package's models are made of (op implementations, the
program → fx core builder, layers, heads, config fields, HF model classes) and import only torch,
transformers and each other: `remote_code` copies them verbatim into every saved folder, with the genotype
pre-parsed into `config.json`, so the folder loads with plain transformers (`trust_remote_code=True`).

The names below are imported on first use (module `__getattr__`), so `import autobert_zero.compiler` and
the torch-free `analysis` (parameters and FLOPs from sizes) do not import torch or transformers. The first
use of a Hugging Face name (the config, the models, `from_hf_bert`, the supernet) registers the
`autobert-zero` model type with transformers' Auto classes (`register_auto_classes`, idempotent).
"""

from typing import TYPE_CHECKING

from autobert_zero.lazy import by_module, lazy_getattr

if TYPE_CHECKING:
    from .analysis import (
        FlopsReport,
        LayerFlops,
        ParameterReport,
        StaticSizes,
        count_parameters,
        flops_per_token,
        parameter_report,
    )
    from .attention_core import clear_core_cache, compile_core
    from .backbone import Encoder, build_encoder, build_layer, check_settings
    from .conv import ConvMixer
    from .from_bert import bert_genotype_text, from_hf_bert
    from .functional_id import fingerprint
    from .hf_config import AutoBertZeroConfig
    from .hf_model import (
        AutoBertZeroForMaskedLM,
        AutoBertZeroForSequenceClassification,
        AutoBertZeroModel,
        AutoBertZeroPreTrainedModel,
        register_auto_classes,
    )
    from .layers import BRANCH_ROLES, AttentionMixer, EncoderLayer, LayerSettings, role_path
    from .lowering import FusedAttention, find_fused_attention
    from .op_impls import register_op_impl
    from .supernet import AutoBertZeroSupernetForMaskedLM, SharedConv, SuperLayer, shared_weight, shared_weight_map

_EXPORTS: dict[str, tuple[str, ...]] = {
    "analysis": ("FlopsReport", "LayerFlops", "StaticSizes", "ParameterReport", "count_parameters",
                 "flops_per_token", "parameter_report"),
    "attention_core": ("clear_core_cache", "compile_core"),
    "backbone": ("Encoder", "build_encoder", "build_layer", "check_settings"),
    "conv": ("ConvMixer",),
    "functional_id": ("fingerprint",),
    "from_bert": ("bert_genotype_text", "from_hf_bert"),
    "hf_config": ("AutoBertZeroConfig",),
    "hf_model": ("AutoBertZeroForMaskedLM", "AutoBertZeroForSequenceClassification", "AutoBertZeroModel",
                 "AutoBertZeroPreTrainedModel", "register_auto_classes"),
    "layers": ("BRANCH_ROLES", "AttentionMixer", "EncoderLayer", "LayerSettings", "role_path"),
    "lowering": ("FusedAttention", "find_fused_attention"),
    "op_impls": ("register_op_impl",),
    "supernet": ("AutoBertZeroSupernetForMaskedLM", "SharedConv", "SuperLayer", "shared_weight",
                 "shared_weight_map"),
}
"""Public name → its module, resolved on first use (module `__getattr__`)."""
_HF_MODULES = frozenset({"from_bert", "hf_config", "hf_model", "supernet"})
"""Modules whose names are Hugging Face classes or make them: first use registers the Auto classes."""


def _register_if_hf(module: str) -> None:
    if module.lstrip(".") in _HF_MODULES:
        from .hf_model import register_auto_classes

        register_auto_classes()


__getattr__ = lazy_getattr(__name__, by_module({f".{m}": names for m, names in _EXPORTS.items()}), _register_if_hf)


__all__ = [
    "BRANCH_ROLES",
    "AttentionMixer",
    "AutoBertZeroConfig",
    "AutoBertZeroForMaskedLM",
    "AutoBertZeroForSequenceClassification",
    "AutoBertZeroModel",
    "AutoBertZeroPreTrainedModel",
    "AutoBertZeroSupernetForMaskedLM",
    "ConvMixer",
    "Encoder",
    "EncoderLayer",
    "FlopsReport",
    "FusedAttention",
    "LayerFlops",
    "LayerSettings",
    "ParameterReport",
    "SharedConv",
    "StaticSizes",
    "SuperLayer",
    "bert_genotype_text",
    "build_encoder",
    "build_layer",
    "check_settings",
    "clear_core_cache",
    "compile_core",
    "count_parameters",
    "find_fused_attention",
    "fingerprint",
    "flops_per_token",
    "from_hf_bert",
    "parameter_report",
    "register_auto_classes",
    "register_op_impl",
    "role_path",
    "shared_weight",
    "shared_weight_map",
]

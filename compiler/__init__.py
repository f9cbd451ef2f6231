"""autobert_zero.compiler — genotype IR → torch.fx attention cores → modules → Hugging Face models.

Read in data-flow order: `padding` (where masks go) and `lowering` (fusing scaled dot-product attention)
serve `attention_core` (an attention graph as an fx GraphModule); `conv` and `layers` build one layer;
`backbone` builds the encoder from a genotype; `heads`, `hf_config`, `hf_model` are the Hugging Face
shells; `from_bert` converts a `BertModel`; `analysis` and `fingerprint` measure a genotype.
"""

from .analysis import FlopsReport, LayerFlops, count_parameters, flops_per_token
from .attention_core import clear_core_cache, compile_core
from .backbone import Encoder, build_encoder, build_layer, check_settings
from .conv import ConvMixer
from .fingerprint import fingerprint
from .from_bert import bert_genotype_text, from_hf_bert
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
from .supernet import AutoBertZeroSupernetForMaskedLM, SharedConv, SuperLayer, shared_weight, shared_weight_map

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
    "SharedConv",
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
    "register_auto_classes",
    "role_path",
    "shared_weight",
    "shared_weight_map",
]

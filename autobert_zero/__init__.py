"""AutoBERT-Zero: evolve BERT backbones from primitive math operations.

The package's stages are sub-packages, in data-flow order: `grammar` (text → IR), `compiler` (IR → modules,
attention graphs as torch.fx → HF model), `evolve` (OP-NAS search, no torch), `train` (DeepSpeed pre-training,
GLUE, the BIWS supernet, the search's fitness, the ranking audit). The application shell around them:
`config` (strict YAML configs), `cli` (the `abz` command), `errors`, `io`, `run_dir`.

Importing the package is light: the names below are resolved on first use, so `import autobert_zero`
(and `abz check`) import neither torch nor transformers. The first use of a model class or the config
(`autobert_zero.AutoBertZeroConfig`, ...) registers the `autobert-zero` model type with transformers'
Auto classes; to load a saved folder with `AutoModel.from_pretrained` before touching any of them, call
`autobert_zero.register_auto_classes()`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autobert_zero.errors import AbzError, GenotypeError
from autobert_zero.lazy import lazy_getattr

if TYPE_CHECKING:
    from autobert_zero.compiler import (
        AutoBertZeroConfig,
        AutoBertZeroForMaskedLM,
        AutoBertZeroForSequenceClassification,
        AutoBertZeroModel,
        from_hf_bert,
        register_auto_classes,
    )
    from autobert_zero.grammar import Genotype, load_genotype, parse_genotype

_LAZY = {
    "AutoBertZeroConfig": "autobert_zero.compiler",
    "AutoBertZeroForMaskedLM": "autobert_zero.compiler",
    "AutoBertZeroForSequenceClassification": "autobert_zero.compiler",
    "AutoBertZeroModel": "autobert_zero.compiler",
    "from_hf_bert": "autobert_zero.compiler",
    "register_auto_classes": "autobert_zero.compiler",
    "Genotype": "autobert_zero.grammar",
    "load_genotype": "autobert_zero.grammar",
    "parse_genotype": "autobert_zero.grammar",
}


__getattr__ = lazy_getattr(__name__, _LAZY)  # the compiler registers the Auto classes on first use

__version__ = "0.1.0"
__all__ = [
    "AbzError", "AutoBertZeroConfig", "AutoBertZeroForMaskedLM", "AutoBertZeroForSequenceClassification",
    "AutoBertZeroModel", "Genotype", "GenotypeError", "from_hf_bert", "load_genotype", "parse_genotype",
    "register_auto_classes",
]

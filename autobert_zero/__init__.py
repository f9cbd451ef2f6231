"""AutoBERT-Zero: evolve BERT backbones from primitive math operations.

The package's stages are sub-packages: `grammar` (text → IR), `compiler` (IR → torch.fx → HF model),
`train` (DeepSpeed pre-training and GLUE), `evolve` (OP-NAS search). Importing the package registers the
model classes with transformers' Auto classes (model_type "autobert-zero").
"""

from autobert_zero.compiler import (
    AutoBertZeroConfig,
    AutoBertZeroForMaskedLM,
    AutoBertZeroForSequenceClassification,
    AutoBertZeroModel,
    from_hf_bert,
    register_auto_classes,
)
from autobert_zero.errors import AbzError, GenotypeError
from autobert_zero.grammar import Genotype, load_genotype, parse_genotype

register_auto_classes()

__version__ = "0.1.0"
__all__ = [
    "AbzError", "AutoBertZeroConfig", "AutoBertZeroForMaskedLM", "AutoBertZeroForSequenceClassification",
    "AutoBertZeroModel", "Genotype", "GenotypeError", "from_hf_bert", "load_genotype", "parse_genotype",
]

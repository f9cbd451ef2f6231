"""autobert_zero.grammar — the genotype language: text → IR, validation, printing, canonical identity.

Only this stage imports lark, and it never imports torch or transformers (tests/test_light_imports.py):
the op table (`ops.py`) holds shapes, formulas, padding facts and FLOPs; the compiler holds the
implementations. The IR (`ir.py`) is what every later stage reads.
"""

from .canonical import canonical_graph, canonicalize, genotype_id
from .diagnostics import CODES, Diagnostic
from .formula import formula
from .ir import (
    AttentionGraph,
    AttentionLayer,
    Call,
    ConvLayer,
    Expr,
    Genotype,
    Input,
    Layer,
    Span,
)
from .language import Language, current_language, default_language, using_language
from .ops import (
    CONV_DILATIONS,
    CONV_KERNELS,
    CONV_TYPES,
    DEFAULT_OPS,
    HEAD_AXIS,
    INPUT_SHAPE,
    INPUTS,
    OUTPUT_SHAPE,
    POSITION_AXIS,
    OpSpec,
    Shape,
    ShapeRuleError,
)
from .parser import load_genotype, parse_genotype, parse_with_diagnostics, read_genotype_text
from .printer import print_genotype, print_graph
from .sampler import sample_conv, sample_genotype, sample_graph
from .validate import infer_shapes, validate, validate_graph

__all__ = [
    "CODES", "CONV_DILATIONS", "CONV_KERNELS", "CONV_TYPES", "DEFAULT_OPS", "HEAD_AXIS", "INPUTS", "INPUT_SHAPE",
    "OUTPUT_SHAPE", "POSITION_AXIS",
    "AttentionGraph", "AttentionLayer", "Call", "ConvLayer", "Diagnostic", "Expr", "Genotype", "Input",
    "Language", "Layer", "OpSpec", "Shape", "ShapeRuleError", "Span",
    "canonical_graph", "canonicalize", "current_language", "default_language", "formula", "genotype_id", "infer_shapes",
    "load_genotype", "parse_genotype", "parse_with_diagnostics", "print_genotype", "print_graph", "read_genotype_text",
    "sample_conv", "sample_genotype", "sample_graph", "using_language", "validate", "validate_graph",
]

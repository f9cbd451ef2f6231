"""`abz check`, `abz show` and `abz compile`: the genotype-facing sub-commands.

`check` validates files (text or JSON report; exit 2 if any is invalid), `show` prints per-layer formulas,
parameters and FLOPs at a chosen size and draws the attention graphs, `compile` writes a Hugging Face
model folder (randomly initialised) for a genotype at a chosen size.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from autobert_zero.errors import ConfigError
from autobert_zero.grammar import (
    AttentionLayer,
    ConvLayer,
    Diagnostic,
    Genotype,
    default_language,
    formula,
    load_genotype,
    parse_with_diagnostics,
    read_genotype_text,
)
from autobert_zero.io import atomic_write_text, follow_umask_tree
from autobert_zero.run_dir import open_run_dir

SIZE_KEYS = ("hidden_size", "num_attention_heads", "intermediate_size", "max_position_embeddings", "type_vocab_size")


def register(sub: argparse._SubParsersAction) -> None:
    check = sub.add_parser("check", help="validate genotype files (exit 2 if any is invalid)",
                           description="Validate genotype files; print FILE:LINE:COL: error[CODE]: message.")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument("--json", action="store_true", help="print one JSON array with a report per file")
    check.add_argument("--max-nodes", type=int, default=None, help="graph-size limit (default: the language's)")
    check.set_defaults(func=cmd_check)

    show = sub.add_parser("show", help="formulas, parameters and FLOPs per layer; draw the attention graphs")
    show.add_argument("file", metavar="FILE")
    add_size_arguments(show)
    show.add_argument("--seq-len", type=int, default=128, help="sequence length for FLOPs (default 128)")
    show.add_argument("--vocab-size", type=int, default=30522, help="vocabulary size (default 30522)")
    show.add_argument("--dot", metavar="PATH", help="write the attention graphs as Graphviz DOT")
    show.add_argument("--svg", metavar="PATH", help="write the attention graphs as an SVG drawing")
    show.set_defaults(func=cmd_show)

    compile_ = sub.add_parser("compile", help="write a Hugging Face model folder",
                              description="Compile a genotype at a size into a (randomly initialised) Hugging "
                              "Face model folder loadable with AutoModel.from_pretrained.")
    compile_.add_argument("file", metavar="FILE")
    compile_.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    compile_.add_argument("--head", choices=["base", "mlm", "classifier"], default="mlm",
                          help="which model class to save (default: mlm)")
    compile_.add_argument("--vocab-size", type=int, default=30522)
    compile_.add_argument("--seed", type=int, default=0, help="seed of the random initialisation")
    compile_.add_argument("--force", action="store_true",
                          help="write into a non-empty --out folder, replacing only the files compile writes")
    add_size_arguments(compile_)
    compile_.set_defaults(func=cmd_compile)


def add_size_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="YAML", default=None,
                        help="take sizes from a config's `model:` section (default: configs/small.yaml sizes)")
    parser.add_argument("--hidden", type=int, dest="hidden_size", help="hidden size (overrides --config)")
    parser.add_argument("--heads", type=int, dest="num_attention_heads", help="attention heads")
    parser.add_argument("--intermediate", type=int, dest="intermediate_size", help="FFN inner size")


# ---------------------------------------------------------------------------------------------------
# check


def check_file(path: str, max_nodes: int | None) -> tuple[Genotype | None, list[Diagnostic]]:
    language = default_language()
    if max_nodes is not None:
        language = language.with_limits(max_nodes=max_nodes)
    text, errors = read_genotype_text(path)
    if text is None:
        return None, errors
    genotype, errors = parse_with_diagnostics(text, path, language=language)
    return (genotype if not errors else None), errors


def cmd_check(args: argparse.Namespace) -> int:
    if args.max_nodes is not None and args.max_nodes < 1:
        raise ConfigError(f"--max-nodes must be at least 1, got {args.max_nodes}")
    reports: list[dict[str, Any]] = []
    for path in args.files:
        genotype, errors = check_file(path, args.max_nodes)
        reports.append({"file": path, "valid": not errors, "id": genotype.id if genotype else None,
                        "errors": [e.to_json() for e in errors]})
        if not args.json:
            for error in errors:
                print(error.render(path))
            if genotype is not None:
                print(f"{path}: ok — {genotype.num_layers} layers, id {genotype.id[:16]}")
    if args.json:
        print(json.dumps(reports, indent=2, ensure_ascii=False))
    return 0 if all(r["valid"] for r in reports) else 2


# ---------------------------------------------------------------------------------------------------
# sizes, shared by show and compile


def resolve_sizes(args: argparse.Namespace) -> dict[str, int]:
    """Model sizes from --config (its `model:` section) or the small preset, then the flag overrides."""
    sizes: dict[str, int] = {"hidden_size": 256, "num_attention_heads": 4, "intermediate_size": 1024,
                             "max_position_embeddings": 512, "type_vocab_size": 2}
    if args.config:
        from autobert_zero.config.load import load_config

        model = load_config(args.config).model
        sizes.update({key: getattr(model, key) for key in SIZE_KEYS})
    from autobert_zero.config.load import check_field, check_model_fits
    from autobert_zero.config.schema import DataConfig, ModelSizes, TrainConfig

    for key in ("hidden_size", "num_attention_heads", "intermediate_size"):
        value = getattr(args, key, None)
        if value is not None:
            check_field(ModelSizes, key, value, f"--{key.split('_')[0]}", "command line")
            sizes[key] = value
    vocab = getattr(args, "vocab_size", 30522)
    check_field(DataConfig, "vocab_size", vocab, "--vocab-size", "command line")
    if getattr(args, "seed", None) is not None:
        check_field(TrainConfig, "seed", args.seed, "--seed", "command line")
    check_model_fits(sizes["hidden_size"], sizes["intermediate_size"], vocab, sizes["max_position_embeddings"],
                     "command line", bytes_per_parameter=4)
    return sizes


def build_config(genotype: Genotype, sizes: dict[str, int], vocab_size: int) -> Any:
    from autobert_zero.compiler import AutoBertZeroConfig

    return AutoBertZeroConfig(genotype=genotype.to_text(), vocab_size=vocab_size, **sizes)


# ---------------------------------------------------------------------------------------------------
# show


def layer_description(genotype: Genotype, index: int) -> str:
    layer = genotype.layers[index]
    if isinstance(layer, AttentionLayer):
        return f"attention {layer.graph}: {formula(genotype.graph(layer.graph))}"
    assert isinstance(layer, ConvLayer)
    return f"conv {layer.kind} kernel={layer.kernel} dilation={layer.dilation}"


def cmd_show(args: argparse.Namespace) -> int:
    """Parameters and FLOPs come from `compiler.analysis`, computed from the sizes: no model is built and
    torch is not imported (the counts equal the built model's, tests/test_compiler_analysis.py)."""
    from autobert_zero.compiler.analysis import StaticSizes, flops_per_token, parameter_report

    genotype = load_genotype(args.file)
    if args.seq_len < 1:
        raise ConfigError(f"--seq-len must be positive, got {args.seq_len}")
    sizes = resolve_sizes(args)
    static = StaticSizes(vocab_size=args.vocab_size, **sizes)
    params = parameter_report(genotype, static)
    per_layer, other = params.layers, params.embeddings + params.other
    layer_flops = [layer.total for layer in flops_per_token(genotype, static, args.seq_len).layers]
    print(f"{args.file}  id {genotype.id[:16]}  hidden={sizes['hidden_size']} heads={sizes['num_attention_heads']} "
          f"ffn={sizes['intermediate_size']} seq={args.seq_len}")
    width = max(len(layer_description(genotype, i)) for i in range(genotype.num_layers))
    print(f"{'layer':>5}  {'token mixer'.ljust(width)}  {'params':>10}  {'MFLOPs/token':>12}")
    for i in range(genotype.num_layers):
        print(f"{i + 1:>5}  {layer_description(genotype, i).ljust(width)}  {per_layer[i]:>10,}  "
              f"{layer_flops[i] / 1e6:>12.2f}")
    total_flops = sum(layer_flops)
    print(f"{'':>5}  {'embeddings, pooler'.ljust(width)}  {other:>10,}")
    print(f"{'':>5}  {'total'.ljust(width)}  {sum(per_layer) + other:>10,}  {total_flops / 1e6:>12.2f}")
    if args.dot:
        from autobert_zero.grammar.drawing import genotype_to_dot

        atomic_write_text(Path(args.dot), genotype_to_dot(genotype))
        print(f"wrote {args.dot}")
    if args.svg:
        from autobert_zero.grammar.drawing import genotype_to_svg

        atomic_write_text(Path(args.svg), genotype_to_svg(genotype))
        print(f"wrote {args.svg}")
    return 0


# ---------------------------------------------------------------------------------------------------
# compile / export


def cmd_compile(args: argparse.Namespace) -> int:
    import torch

    from autobert_zero.compiler import (
        AutoBertZeroForMaskedLM,
        AutoBertZeroForSequenceClassification,
        AutoBertZeroModel,
    )

    genotype = load_genotype(args.file)
    config = build_config(genotype, resolve_sizes(args), args.vocab_size)
    torch.manual_seed(args.seed)
    cls = {"base": AutoBertZeroModel, "mlm": AutoBertZeroForMaskedLM,
           "classifier": AutoBertZeroForSequenceClassification}[args.head]
    model = cls(config)
    out = Path(args.out)
    with open_run_dir(out, "abz compile", force=args.force, can_resume=False) as run:
        written = save_into(model, run.path)
    params = sum(p.numel() for p in model.parameters())
    print(f"wrote {', '.join(written)} into {out} ({cls.__name__}, {genotype.num_layers} layers, "
          f"{params:,} parameters); load it with transformers.AutoModel.from_pretrained after "
          "`autobert_zero.register_auto_classes()`", file=sys.stdout)
    return 0


def save_into(model: Any, folder: Path) -> list[str]:
    """`save_pretrained` into a temporary folder inside `folder`, then move each file over its namesake:
    files of the same name are replaced (each atomically), every other file in `folder` stays."""
    import shutil
    import tempfile

    from autobert_zero.compiler.saving import save_pretrained

    tmp = Path(tempfile.mkdtemp(prefix=".abz-save.", dir=folder))
    try:
        save_pretrained(model, tmp)  # without importing deepspeed (no accelerator warnings)
        follow_umask_tree(tmp)
        names = sorted(p.name for p in tmp.iterdir())
        for name in names:
            os.replace(tmp / name, folder / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return names

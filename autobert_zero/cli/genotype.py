"""`abz check`, `abz show` and `abz compile`: the genotype-facing sub-commands.

`check` validates files (text or JSON report; exit 2 if any is invalid), `show` prints per-layer formulas,
parameters and FLOPs at a chosen size and draws the attention graphs, `compile` writes a Hugging Face
model folder (randomly initialised) for a genotype at a chosen size.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autobert_zero.cli.exit_codes import ExitCode
from autobert_zero.cli.options import (
    DEFAULT_VOCAB_SIZE,
    HEADS,
    SIZE_OVERRIDES,
    SchemaInt,
    add_force,
    add_head,
    add_json,
    add_language,
    add_out,
    add_seed,
    add_size_arguments,
    add_vocab_size,
)
from autobert_zero.config.paths import resolve_shipped
from autobert_zero.config.schema import SIZE_KEYS, ModelSizes
from autobert_zero.errors import ConfigError
from autobert_zero.grammar import (
    AttentionLayer,
    ConvLayer,
    Diagnostic,
    Genotype,
    Language,
    default_language,
    formula,
    load_genotype,
    parse_with_diagnostics,
    read_genotype_text,
    using_language,
)
from autobert_zero.io import atomic_files, atomic_write_text
from autobert_zero.run_dir import open_run_dir

if TYPE_CHECKING:
    from autobert_zero.cli.options import Subparsers

def register(sub: Subparsers) -> None:
    """Add `check`, `show` and `compile` to the `abz` sub-command parser."""
    check = sub.add_parser("check", help="validate genotype files (exit 2 if any is invalid)",
                           description="Validate genotype files; print FILE:LINE:COL: error[CODE]: message.")
    check.add_argument("files", nargs="+", metavar="FILE")
    add_json(check, "print one JSON array with a report per file")
    check.add_argument("--max-nodes", type=SchemaInt("--max-nodes", "SearchSettings", "max_nodes"), default=None,
                       help="graph-size limit (default: the language's)")
    add_language(check)
    check.set_defaults(func=cmd_check)

    show = sub.add_parser("show", help="formulas, parameters and FLOPs per layer; draw the attention graphs")
    show.add_argument("file", metavar="FILE")
    add_size_arguments(show)
    show.add_argument("--seq-len", type=SchemaInt("--seq-len", "ModelSizes", "max_position_embeddings"), default=128,
                      help="sequence length for FLOPs (default 128)")
    add_vocab_size(show)
    show.add_argument("--dot", metavar="PATH", help="write the attention graphs as Graphviz DOT")
    show.add_argument("--svg", metavar="PATH", help="write the attention graphs as an SVG drawing")
    add_language(show)
    show.set_defaults(func=cmd_show)

    compile_ = sub.add_parser("compile", help="write a Hugging Face model folder",
                              description="Compile a genotype at a size into a (randomly initialised) Hugging "
                              "Face model folder loadable with AutoModel.from_pretrained.")
    compile_.add_argument("file", metavar="FILE")
    add_out(compile_, "output folder (created)", metavar="DIR")
    add_head(compile_, "which model class to save (default: mlm)")
    add_vocab_size(compile_)
    add_seed(compile_)
    add_force(compile_, "write into a non-empty --out folder, replacing only the files compile writes")
    add_size_arguments(compile_)
    add_language(compile_)
    compile_.set_defaults(func=cmd_compile)


# ---------------------------------------------------------------------------------------------------
# check


def command_language(args: argparse.Namespace) -> Language:
    """The language of a genotype command: `--language FILE`'s section, else the `--config` file's (`show`,
    `compile`, `export FILE`), else the built-in language. The user named it: no consent is asked."""
    if getattr(args, "language", None) is None and getattr(args, "config", None) is None:
        return default_language()
    from autobert_zero.config.language import language_from_config
    from autobert_zero.config.load import load_config, load_language_section

    if getattr(args, "language", None) is not None:
        return language_from_config(load_language_section(args.language))
    return language_from_config(load_config(args.config))


def check_file(path: str, max_nodes: int | None, language: Language | None = None
               ) -> tuple[Genotype | None, list[Diagnostic]]:
    language = language or default_language()
    if max_nodes is not None:
        language = language.with_limits(max_nodes=max_nodes)
    path = str(resolve_shipped(path))
    text, errors = read_genotype_text(path)
    if text is None:
        return None, errors
    genotype, errors = parse_with_diagnostics(text, path, language=language)
    return (genotype if not errors else None), errors


def cmd_check(args: argparse.Namespace) -> int:
    if args.max_nodes is not None and args.max_nodes < 1:
        raise ConfigError(f"--max-nodes must be at least 1, got {args.max_nodes}")
    reports: list[dict[str, Any]] = []
    language = command_language(args)
    for path in args.files:
        genotype, errors = check_file(path, args.max_nodes, language)
        reports.append({"file": path, "valid": not errors, "id": genotype.id if genotype else None,
                        "errors": [e.to_json() for e in errors]})
        if not args.json:
            for error in errors:
                print(error.render(path))
            if genotype is not None:
                print(f"{path}: ok — {genotype.num_layers} layers, id {genotype.id[:16]}")
    if args.json:
        print(json.dumps(reports, indent=2, ensure_ascii=False))
    return ExitCode.OK if all(r["valid"] for r in reports) else ExitCode.USAGE


# ---------------------------------------------------------------------------------------------------
# sizes, shared by show and compile


def resolve_sizes(args: argparse.Namespace) -> dict[str, int]:
    """Model sizes from --config (its `model:` section) or the `ModelSizes` defaults (the small preset's
    sizes), then the flag overrides (checked by `model_sizes`)."""
    from autobert_zero.config.load import load_config

    return model_sizes(load_config(args.config).model if args.config else ModelSizes(), args)


def model_sizes(model: ModelSizes, args: argparse.Namespace) -> dict[str, int]:
    """The sizes of `model` with the flag overrides of `args` (--hidden, --heads, --intermediate), after the
    checks every command that builds a model from flags makes (`abz show`, `compile`, `export`): each flag
    within its config key's bounds, `--vocab-size` and `--seed` too, and the smallest model fitting in RAM."""
    from autobert_zero.config.load import check_field, check_model_fits
    from autobert_zero.config.schema import Config, DataConfig

    sizes: dict[str, int] = {key: getattr(model, key) for key in SIZE_KEYS}
    for key, flag in SIZE_OVERRIDES.items():
        value = getattr(args, key, None)
        if value is not None:
            check_field(ModelSizes, key, value, flag, "command line")
            sizes[key] = value
    vocab = getattr(args, "vocab_size", DEFAULT_VOCAB_SIZE)
    check_field(DataConfig, "vocab_size", vocab, "--vocab-size", "command line")
    if getattr(args, "seed", None) is not None:
        check_field(Config, "seed", args.seed, "--seed", "command line")
    check_model_fits(sizes["hidden_size"], sizes["intermediate_size"], vocab, sizes["max_position_embeddings"],
                     "command line", bytes_per_parameter=4)
    return sizes


def build_config(genotype: Genotype, sizes: dict[str, int], vocab_size: int) -> Any:
    from autobert_zero.compiler import AutoBertZeroConfig

    return AutoBertZeroConfig.from_genotype(genotype, vocab_size=vocab_size, **sizes)


# ---------------------------------------------------------------------------------------------------
# show


def layer_description(genotype: Genotype, index: int) -> str:
    layer = genotype.layers[index]
    if isinstance(layer, AttentionLayer):
        return f"attention {layer.graph}: {formula(genotype.graph(layer.graph), genotype.language)}"
    assert isinstance(layer, ConvLayer)
    return f"conv {layer.kind} kernel={layer.kernel} dilation={layer.dilation}"


def cmd_show(args: argparse.Namespace) -> int:
    """Parameters and FLOPs come from `compiler.analysis`, computed from the sizes: no model is built and
    torch is not imported (the counts equal the built model's, tests/test_compiler_analysis.py)."""
    from autobert_zero.compiler.analysis import StaticSizes, flops_per_token, parameter_report

    language = command_language(args)
    genotype = load_genotype(resolve_shipped(args.file), language=language)
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
    return ExitCode.OK


# ---------------------------------------------------------------------------------------------------
# compile / export


def build_model(genotype: Genotype, sizes: dict[str, int], vocab_size: int, head: str, seed: int) -> Any:
    """A randomly initialised (from `seed`) model of the `--head` class (one of `options.HEADS`)."""
    import torch

    from autobert_zero.compiler import (
        AutoBertZeroForMaskedLM,
        AutoBertZeroForSequenceClassification,
        AutoBertZeroModel,
    )

    classes = {"base": AutoBertZeroModel, "mlm": AutoBertZeroForMaskedLM,
               "classifier": AutoBertZeroForSequenceClassification}
    assert set(classes) == set(HEADS)
    torch.manual_seed(seed)
    return classes[head](build_config(genotype, sizes, vocab_size))


def cmd_compile(args: argparse.Namespace) -> int:
    language = command_language(args)
    genotype = load_genotype(resolve_shipped(args.file), language=language)
    model = build_model(genotype, resolve_sizes(args), args.vocab_size, args.head, args.seed)
    out = Path(args.out)
    params = sum(p.numel() for p in model.parameters())
    with open_run_dir(out, "abz compile", force=args.force, can_resume=False) as run:
        written = save_into(model, run.path)
        with using_language(language):  # the card's formulas read the genotype's own ops
            atomic_write_text(run.path / "README.md", compile_card(genotype, model, params, args.seed, language))
    model_files = [name for name in written if not name.endswith(".py")]
    scripts = len(written) - len(model_files)
    code = f" and its remote code ({scripts} .py files)" if scripts else ""
    print(f"wrote {', '.join(model_files)}{code} into {out} ({type(model).__name__}, {genotype.num_layers} layers, "
          f"{params:,} parameters); load it with transformers.AutoModel.from_pretrained after "
          "`autobert_zero.register_auto_classes()`"
          + (", or without autobert_zero with trust_remote_code=True" if code else ""), file=sys.stdout)
    return ExitCode.OK


def compile_card(genotype: Any, model: Any, params: int, seed: int, language: Any = None) -> str:
    """The model card of a compiled folder: what it is (untrained), the genotype per layer, sizes and costs."""
    from autobert_zero.compiler.analysis import flops_per_token
    from autobert_zero.evolve.export import layer_lines

    c = model.config
    seq = min(128, c.max_position_embeddings)
    flops = flops_per_token(genotype, c, seq, language=language).per_token
    return "\n".join([
        f"# `abz compile`: {type(model).__name__}, genotype id `{genotype.id}`", "",
        f"Weights: **randomly initialised (seed {seed}), not trained**. Train it with `abz pretrain` or "
        f"`abz retrain`; load it with `AutoModel.from_pretrained(dir, trust_remote_code=True)` (only torch and "
        f"transformers needed) or after `autobert_zero.register_auto_classes()`.", "",
        "## Architecture", "", f"{genotype.num_layers} layers:", "", *layer_lines(genotype), "",
        "```", genotype.to_text().strip(), "```", "",
        f"- sizes: hidden {c.hidden_size}, {c.num_attention_heads} heads, FFN {c.intermediate_size}, "
        f"{c.max_position_embeddings} positions, vocabulary {c.vocab_size}",
        f"- parameters: {params:,}",
        f"- FLOPs per token: {flops / 1e6:.3f} MFLOPs (forward, encoder, at sequence length {seq})", ""])


def save_into(model: Any, folder: Path) -> list[str]:
    """`save_pretrained` into `folder` through `io.atomic_files`: the model's files replace their namesakes all
    together or not at all (a failed save leaves the previous ones whole), every other file in `folder` stays,
    and an error names `folder`, never the temporary folder. Returns the names written."""
    from autobert_zero.compiler.saving import save_pretrained

    with atomic_files(folder) as tmp:
        save_pretrained(model, tmp)  # without importing deepspeed (no accelerator warnings)
        names = sorted(p.name for p in tmp.iterdir())
    return names

"""The command-line options more than one `abz` command declares, and the output helpers the commands share.

Each `add_*` function declares one option the same way everywhere (name, type, action, metavar, default);
the help text is passed where the option means something command-specific (what `--out` receives, what
`--force` replaces). Every count or size an option takes is bounded when the command line is parsed, before
anything is allocated: by a limit of its own (`IntIn`: `--top`, `--candidates`) or by the bounds of the config
key it mirrors (`SchemaInt`: `--vocab-size` as `data.vocab_size`, `--seed` as `seed`, ...); a value out of
bounds is a `ConfigError` stating the bounds (exit 1). Nothing here imports more than the standard library at
module level: `abz check` stays light.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from autobert_zero.errors import ConfigError
from autobert_zero.json_files import shorten

if TYPE_CHECKING:
    from typing import TypeAlias

    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
    """What `ArgumentParser.add_subparsers` returns, which each family's `register` fills (argparse names the
    class privately: only the type checker sees the name)."""

HEADS = ("base", "mlm", "classifier")
"""Values of `--head`: the Hugging Face model class a compiled folder holds (see `cli.genotype.build_model`)."""
DEFAULT_HEAD = "mlm"
DEFAULT_VOCAB_SIZE = 30522
"""`--vocab-size` of `abz show/compile/export`: BERT's WordPiece vocabulary."""
MAX_TOP = 1000
"""Most genotypes `--top` may ask for (each exported one is a model folder)."""
MIN_AUDIT_CANDIDATES = 4
MAX_AUDIT_CANDIDATES = 1000
"""Bounds of `abz audit --candidates` (each candidate is trained in full once per reference seed)."""


# ---------------------------------------------------------------------------------------------------
# bounded integers


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # also a number of more than 4,300 digits
        raise argparse.ArgumentTypeError(f"invalid int value: expected an integer, got {shorten(text)}") from None


class IntIn:
    """argparse `type`: an integer in [low, high], else a `ConfigError` naming `flag` and the bounds."""

    def __init__(self, flag: str, low: int, high: int, unit: str = "") -> None:
        self.flag, self.low, self.high, self.unit = flag, low, high, unit
        self.__name__ = "int"  # argparse names the type in its own messages

    def __call__(self, text: str) -> int:
        value = _integer(text)
        if not self.low <= value <= self.high:
            unit = f" {self.unit}" if self.unit else ""
            raise ConfigError(f"{self.flag} must be at least {self.low:,}{unit} and at most {self.high:,}, "
                              f"got {shorten(value)}")
        return value


class SchemaInt:
    """argparse `type`: an integer within the bounds of the config key it mirrors (field `name` of section
    class `section` of `config/schema.py`), checked as the config loader checks that key."""

    def __init__(self, flag: str, section: str, name: str) -> None:
        self.flag, self.section, self.name = flag, section, name
        self.__name__ = "int"

    def __call__(self, text: str) -> int:
        from autobert_zero.config import schema
        from autobert_zero.config.load import check_field

        value = _integer(text)
        check_field(getattr(schema, self.section), self.name, value, self.flag, "command line")
        return value


SIZE_OVERRIDES = {"hidden_size": "--hidden", "num_attention_heads": "--heads", "intermediate_size": "--intermediate"}
"""The model sizes `add_size_arguments` lets the command line override, with their flags."""
SIZE_HELP = {"hidden_size": "hidden size (overrides --config)", "num_attention_heads": "attention heads",
             "intermediate_size": "FFN inner size"}


# ---------------------------------------------------------------------------------------------------
# options


def add_config(parser: argparse.ArgumentParser, help: str, *, required: bool = False,
               metavar: str | None = None) -> None:
    """`--config`: a YAML config file."""
    parser.add_argument("--config", required=required, metavar=metavar, default=None, help=help)


def add_out(parser: argparse.ArgumentParser, help: str, *, metavar: str | None = None) -> None:
    """`--out` (required): the output folder a command writes (see `autobert_zero.run_dir`)."""
    parser.add_argument("--out", required=True, metavar=metavar, help=help)


def add_force(parser: argparse.ArgumentParser, help: str) -> None:
    """`--force`: accept a non-empty output folder, replacing only the command's own outputs (`help` names them)."""
    parser.add_argument("--force", action="store_true", help=help)


def add_corpus(parser: argparse.ArgumentParser, extra: str = "") -> None:
    """`--corpus` (repeatable): the pre-training text, overriding `data.corpus`."""
    parser.add_argument("--corpus", action="append", metavar="PATH|NAME",
                        help="text/JSON/TSV file or folder, or hub dataset name[:config]; repeat for several" + extra)


def add_max_steps(parser: argparse.ArgumentParser, help: str) -> None:
    """`--max-steps N`: stop a training run early (the schedule still spans `pretrain.max_steps`)."""
    parser.add_argument("--max-steps", type=SchemaInt("--max-steps", "PretrainConfig", "max_steps"), metavar="N",
                        help=help)


def add_resume(parser: argparse.ArgumentParser) -> None:
    """`--resume`: continue a training run from its newest checkpoint."""
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/latest")


def add_supernet(parser: argparse.ArgumentParser, help: str, *, required: bool = False) -> None:
    """`--supernet DIR`: the `--out` folder of `abz supernet`."""
    parser.add_argument("--supernet", required=required, metavar="DIR", default=None, help=help)


def add_json(parser: argparse.ArgumentParser, help: str) -> None:
    """`--json`: print machine-readable JSON instead of the text report."""
    parser.add_argument("--json", action="store_true", help=help)


def add_top(parser: argparse.ArgumentParser, default: int, help: str) -> None:
    """`--top K`: how many of a search's best genotypes."""
    parser.add_argument("--top", type=IntIn("--top", 1, MAX_TOP), default=default, help=help)


def add_seed(parser: argparse.ArgumentParser, help: str = "seed of the random initialisation",
             default: int | None = 0) -> None:
    """`--seed N` (default: 0, the seed of a compiled model's random initialisation)."""
    parser.add_argument("--seed", type=SchemaInt("--seed", "Config", "seed"), default=default, help=help)


def add_head(parser: argparse.ArgumentParser, help: str) -> None:
    """`--head base|mlm|classifier`: which model class a Hugging Face folder holds."""
    parser.add_argument("--head", choices=list(HEADS), default=DEFAULT_HEAD, help=help)


def add_vocab_size(parser: argparse.ArgumentParser) -> None:
    """`--vocab-size` of a model built from a genotype (no tokenizer involved)."""
    parser.add_argument("--vocab-size", type=SchemaInt("--vocab-size", "DataConfig", "vocab_size"),
                        default=DEFAULT_VOCAB_SIZE,
                        help=f"vocabulary size (default {DEFAULT_VOCAB_SIZE})")


def add_size_arguments(parser: argparse.ArgumentParser) -> None:
    """`--config` for the sizes of a config's `model:` section, and the model-size overrides (read by
    `cli.genotype.resolve_sizes`)."""
    add_config(parser, "take sizes from a config's `model:` section (default: configs/small.yaml sizes)",
               metavar="YAML")
    for key, flag in SIZE_OVERRIDES.items():
        parser.add_argument(flag, type=SchemaInt(flag, "ModelSizes", key), dest=key, help=SIZE_HELP[key])


def add_language(parser: argparse.ArgumentParser) -> None:
    """`--language FILE`: a YAML file with a `language:` section (or a config) for commands without a config."""
    parser.add_argument("--language", metavar="FILE", default=None,
                        help="YAML file whose `language:` section names the grammar and op module (or plugin) the "
                        "genotypes are written in (default: the built-in language)")


def add_trust(parser: argparse.ArgumentParser, what: str) -> None:
    """`--trust-language-code`: consent to run the op code of a custom language that a folder carries."""
    parser.add_argument("--trust-language-code", action="store_true",
                        help=f"run the op code of the custom language {what} carries (as transformers' "
                        "trust_remote_code=True); give it only for folders whose source you trust")


# ---------------------------------------------------------------------------------------------------
# output


def report(line: str) -> None:
    """Print one line of a command's result on stdout, once: only rank 0 of a launcher's processes prints."""
    if os.environ.get("RANK", "0") == "0":
        print(line, file=sys.stdout)


def corpus_argument(values: list[str] | None) -> str | list[str] | None:
    """The `--corpus` values as the training functions take them: None, one path, or a list of several."""
    return values[0] if values and len(values) == 1 else values


def report_training(done: str, summary: dict[str, Any], holds: str) -> None:
    """The one-line result of a masked-LM training run (`abz pretrain`, `abz supernet`): what was done, the
    final and held-out losses, and what its `final/` folder holds."""
    final = summary["final_loss"]  # None: resumed at its last step, with no logged loss of that step left
    report(f"{done}; final loss {'n/a' if final is None else f'{final:.4f}'}"
           + (f", held-out loss {summary['eval_loss']:.4f}" if summary["eval_loss"] is not None else "")
           + f"; {holds} in {summary['final_dir']}")

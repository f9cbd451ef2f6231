"""`AutoBertZeroConfig`: the Hugging Face config of a compiled genotype — its text plus the sizes.

The genotype is stored as TEXT in `config.json` (persist text, never pickled objects), so a saved model
is rebuilt from the config alone; sizes are not part of the genotype, so one genotype runs at any size.
`num_hidden_layers` is derived from the genotype, never stored. The fields and their defaults are declared
once, in `portable_config` (the config class of exported folders), which this class extends with parsing.
"""

from __future__ import annotations

import functools
from typing import Any

from autobert_zero.errors import ConfigError
from autobert_zero.grammar import Genotype, Language, parse_genotype
from autobert_zero.grammar.loading import language_from_record

from . import portable_config

PORTABLE_KEYS = ("compiled_genotype", "auto_map")
"""What only an export writes into `config.json` (from the model's modules, `remote_code`), never the config."""


class AutoBertZeroConfig(portable_config.AutoBertZeroConfig):
    """Config of an AutoBERT-Zero model; the fields are documented in `portable_config.AutoBertZeroConfig`.

    The layers come from `genotype` (text); `compiled_genotype` and `auto_map` read from an exported folder
    are ignored here and not written back (`to_dict`): every save writes them anew from the model.

    `language` is the record of a custom language (`grammar.loading`; None: the built-in language), set from
    the genotype's language by `from_genotype`; the genotype text is parsed in the language it describes.
    Rebuilding a language whose record holds op code needs consent (`trust_remote_code=True` when loading).
    """

    language: dict[str, Any] | None = None

    @classmethod
    def from_genotype(cls, genotype: Genotype, **kwargs: Any) -> AutoBertZeroConfig:
        """A config holding `genotype` (printed to text) and the given sizes."""
        return cls(genotype=genotype.to_text(), language=language_record(genotype), **kwargs)

    def resolved_language(self) -> Language:
        """The language of `language` (the built-in one when None), rebuilt once per process (consent needed
        for a record that holds op code, see `grammar.loading.language_from_record`)."""
        where = f"{getattr(self, '_name_or_path', '') or 'the model'}/config.json"
        return language_from_record(self.language, where=where)

    def parsed_genotype(self) -> Genotype:
        """The genotype IR (parsed and validated once per distinct text; raises `GenotypeError`)."""
        if not self.genotype.strip():
            raise ConfigError("AutoBertZeroConfig.genotype is empty: set it to a genotype text, e.g. the "
                              "contents of genotypes/bert.abz, or use AutoBertZeroConfig.from_genotype(ir)")
        return _parse(self.genotype, self.resolved_language())

    @property
    def num_hidden_layers(self) -> int:
        """Number of backbone layers, derived from the genotype (0 while no genotype is set)."""
        return self.parsed_genotype().num_layers if self.genotype.strip() else 0

    @num_hidden_layers.setter
    def num_hidden_layers(self, value: int) -> None:
        if value != self.num_hidden_layers:
            raise ConfigError(f"num_hidden_layers={value} disagrees with the genotype, which has "
                              f"{self.num_hidden_layers} layers; the layer count comes from the genotype")

    def to_dict(self) -> dict[str, Any]:
        """The config as a dict, without the export-only keys (`PORTABLE_KEYS`)."""
        output = super().to_dict()
        for key in PORTABLE_KEYS:
            output.pop(key, None)
        return output


def language_record(genotype: Genotype) -> dict[str, Any] | None:
    """The record of the language `genotype` was built with (None: the built-in language)."""
    language = genotype.language
    return language.record if isinstance(language, Language) else None


@functools.lru_cache(maxsize=64)
def _parse(text: str, language: Language) -> Genotype:
    return parse_genotype(text, "<config.genotype>", language=language)

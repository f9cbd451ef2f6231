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
from autobert_zero.grammar import Genotype, parse_genotype

from . import portable_config

PORTABLE_KEYS = ("compiled_genotype", "auto_map")
"""What only an export writes into `config.json` (from the model's modules, `remote_code`), never the config."""


class AutoBertZeroConfig(portable_config.AutoBertZeroConfig):
    """Config of an AutoBERT-Zero model; the fields are documented in `portable_config.AutoBertZeroConfig`.

    The layers come from `genotype` (text); `compiled_genotype` and `auto_map` read from an exported folder
    are ignored here and not written back (`to_dict`): every save writes them anew from the model.
    """

    @classmethod
    def from_genotype(cls, genotype: Genotype, **kwargs: Any) -> AutoBertZeroConfig:
        """A config holding `genotype` (printed to text) and the given sizes."""
        return cls(genotype=genotype.to_text(), **kwargs)

    def parsed_genotype(self) -> Genotype:
        """The genotype IR (parsed and validated once per distinct text; raises `GenotypeError`)."""
        if not self.genotype.strip():
            raise ConfigError("AutoBertZeroConfig.genotype is empty: set it to a genotype text, e.g. the "
                              "contents of genotypes/bert.abz, or use AutoBertZeroConfig.from_genotype(ir)")
        return _parse(self.genotype)

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


@functools.lru_cache(maxsize=64)
def _parse(text: str) -> Genotype:
    return parse_genotype(text, "<config.genotype>")

"""Portable exports: a saved folder loads with plain transformers + torch and `trust_remote_code=True`.

The folder carries verbatim copies of the package's portable modules (the code the package's own models run)
and the genotype pre-parsed into `config.json` (`compiled_genotype`). The central test loads the folders in a
separate, isolated interpreter where autobert_zero, lark, deepspeed and datasets cannot be imported
(`tests/support/fresh_load.py`), and requires outputs `torch.equal` to the package's on a padded batch; the
slow test does the same in a fresh venv holding only torch and transformers.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForMaskedLM, dynamic_module_utils

from autobert_zero.compiler import (
    AutoBertZeroConfig,
    AutoBertZeroForMaskedLM,
    AutoBertZeroForSequenceClassification,
    AutoBertZeroModel,
    AutoBertZeroSupernetForMaskedLM,
    build_encoder,
    conv,
    hf_model,
    layers,
    portable_layers,
    portable_model,
)
from autobert_zero.compiler.op_impls import register_op_impl, unregister_op_impl
from autobert_zero.compiler.op_source import NotPortableError, custom_ops_module
from autobert_zero.compiler.portable_model import ArchitectureMismatchError
from autobert_zero.compiler.remote_code import AUTO_MAP, CUSTOM_OPS_MODULE, PORTABLE_MODULES
from autobert_zero.grammar import (
    CONV_TYPES,
    DEFAULT_OPS,
    ConvLayer,
    Genotype,
    Language,
    parse_genotype,
    sample_genotype,
)
from tests.support.languages import GELU, grammar_with
from tests.support.models import TINY_SIZES
from tests.support.paths import GENOTYPES, REPO

FRESH_LOAD = REPO / "tests" / "support" / "fresh_load.py"
COMPILER = REPO / "compiler"
PRE_LN_UNFUSED = """
attention vanilla { return matmul(softmax(scale(matmul(Q, transpose(K)))), V) }
attention pairs { return matmul(softmax(neg(euclid(Q, K))), add(V, matmul(cosine(Q, K), V))) }
backbone { conv sepconv kernel=3 dilation=4; attention vanilla; attention pairs }
"""
GELU_GENOTYPE = ("attention a { return matmul(softmax(scale(matmul(gelu(Q), transpose(K)))), V) } "
                 "backbone { attention a; conv light kernel=5 }")
APPROXIMATE = "tanh"


def tanh_gelu(x: torch.Tensor) -> torch.Tensor:
    """The custom op of the tests: its source travels (a module alias and a string constant as globals)."""
    return F.gelu(x, approximate=APPROXIMATE)


def via_helper(x: torch.Tensor) -> torch.Tensor:
    """An implementation whose source cannot travel alone: it calls another function of this module."""
    return tanh_gelu(x) * 2.0


def padded_batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    attention_mask = torch.ones(3, 9, dtype=torch.long)
    attention_mask[1, 6:] = 0
    attention_mask[2, 2:] = 0
    return {"input_ids": torch.randint(1, 99, (3, 9), generator=generator), "attention_mask": attention_mask,
            "token_type_ids": torch.randint(0, 2, (3, 9), generator=generator)}


def first_sample(num_layers: int, conv_probability: float, max_nodes: int,
                 wanted: Callable[[Genotype], bool]) -> Genotype:
    """The first seeded sample (seeds 0, 1, ...) that `wanted` accepts: deterministic."""
    for seed in range(5000):
        genotype = sample_genotype(random.Random(seed), num_layers, conv_probability=conv_probability,
                                   max_nodes=max_nodes)
        if wanted(genotype):
            return genotype
    raise AssertionError("no such sample")


def ops_of(genotype: Genotype) -> set[str]:
    return {call.op for graph in genotype.graphs for call in graph.calls}


def every_conv_type() -> Genotype:
    """A sample with all three conv types and attention that contracts over positions (masks)."""
    return first_sample(6, 0.5, 12, lambda g: {layer.kind for layer in g.layers if isinstance(layer, ConvLayer)}
                        == set(CONV_TYPES) and {"matmul", "softmax"} <= ops_of(g))


def every_op() -> Genotype:
    """A sample of attention layers whose graphs use every built-in op."""
    return first_sample(6, 0.0, 16, lambda g: ops_of(g) == set(DEFAULT_OPS))


@dataclass
class Export:
    """A saved folder, the Auto class and output to compare, and the package model's output."""

    folder: Path
    auto: str
    output: str
    expected: torch.Tensor


def save(model: torch.nn.Module, folder: Path, output: str) -> torch.Tensor:
    model.eval()
    model.save_pretrained(folder)  # type: ignore[operator]
    with torch.no_grad():
        return getattr(model(**padded_batch()), output)


def build(text: str, cls: Callable[..., Any], seed: int, **overrides: object) -> Any:
    torch.manual_seed(seed)
    return cls(AutoBertZeroConfig(genotype=text, **{**TINY_SIZES, **overrides}))


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Export]:
    root = tmp_path_factory.mktemp("exports")
    bert = (GENOTYPES / "bert.abz").read_text()
    figure7 = (GENOTYPES / "autobert_zero.abz").read_text()
    sampled, all_ops = every_conv_type().to_text(), every_op().to_text()
    plans: dict[str, tuple[Any, str, str]] = {
        "bert": (build(bert, AutoBertZeroForMaskedLM, 1), "AutoModelForMaskedLM", "logits"),
        "figure7": (build(figure7, AutoBertZeroForMaskedLM, 2), "AutoModelForMaskedLM", "logits"),
        "sampled": (build(sampled, AutoBertZeroForMaskedLM, 3), "AutoModelForMaskedLM", "logits"),
        "every_op": (build(all_ops, AutoBertZeroForMaskedLM, 7), "AutoModelForMaskedLM", "logits"),
        "pre_ln_unfused": (build(PRE_LN_UNFUSED, AutoBertZeroModel, 4, layer_norm_position="pre",
                                 fused_attention=False), "AutoModel", "last_hidden_state"),
        "classifier": (build(figure7, AutoBertZeroForSequenceClassification, 5, num_labels=3),
                       "AutoModelForSequenceClassification", "logits"),
    }
    found = {name: Export(root / name, auto, output, save(model, root / name, output))
             for name, (model, auto, output) in plans.items()}
    language = Language(grammar_with("gelu"), {**DEFAULT_OPS, "gelu": GELU})
    register_op_impl("gelu", tanh_gelu)
    try:
        genotype = parse_genotype(GELU_GENOTYPE, language=language)
        config = AutoBertZeroConfig(genotype=GELU_GENOTYPE, **TINY_SIZES)
        torch.manual_seed(6)
        model = AutoBertZeroForMaskedLM(config, encoder=build_encoder(genotype, config, language=language,
                                                                      init_std=None))
        found["custom_op"] = Export(root / "custom_op", "AutoModelForMaskedLM", "logits",
                                    save(model, root / "custom_op", "logits"))
    finally:
        unregister_op_impl("gelu")
    return found


def tampered(source: Path, folder: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of `source` whose config.json has been changed by `edit`."""
    shutil.copytree(source, folder)
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def conv_to_attention(config: dict[str, Any]) -> None:
    layers_ = config["compiled_genotype"]["layers"]
    index = next(i for i, layer in enumerate(layers_) if "conv" in layer)
    layers_[index] = {"attention": next(iter(config["compiled_genotype"]["graphs"]))}


def other_kernel(config: dict[str, Any]) -> None:
    layer = next(layer for layer in config["compiled_genotype"]["layers"] if "conv" in layer)
    layer["kernel"] = 3 if layer["kernel"] != 3 else 5


def run_fresh(python: str, exports: dict[str, Export], work: Path, env: dict[str, str]) -> tuple[dict[str, Any],
                                                                                                dict[str, Any]]:
    """Load every export (and two tampered copies) with `python -I fresh_load.py`: (outputs, report)."""
    cases = [{"name": name, "folder": str(e.folder), "auto": e.auto, "output": e.output} for name, e in exports.items()]
    for name, edit in (("tampered_kernel", other_kernel), ("tampered_layer", conv_to_attention)):
        folder = tampered(exports["sampled"].folder, work / name, edit)
        cases.append({"name": name, "folder": str(folder), "auto": "AutoModelForMaskedLM", "output": "logits"})
    torch.save(padded_batch(), work / "inputs.pt")
    job = {"inputs": str(work / "inputs.pt"), "out": str(work / "outputs.pt"), "cases": cases}
    (work / "job.json").write_text(json.dumps(job))
    result = subprocess.run([python, "-I", str(FRESH_LOAD), str(work / "job.json")], cwd=work, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return torch.load(work / "outputs.pt", weights_only=True), json.loads(result.stdout.splitlines()[-1])


def check_fresh_results(outputs: dict[str, Any], report: dict[str, Any], exports: dict[str, Export]) -> None:
    assert report["leaked"] == []
    for name, export in exports.items():
        assert name not in report["errors"], report["errors"][name]
        assert report["modules"][name].startswith("transformers_modules."), report["modules"][name]
        assert torch.equal(outputs[name], export.expected), name
    kernel, layer = report["errors"]["tampered_kernel"], report["errors"]["tampered_layer"]
    assert kernel.startswith("ArchitectureMismatchError") and "config.json" in kernel and "another shape" in kernel
    assert layer.startswith("ArchitectureMismatchError") and "config.json" in layer and "missing" in layer


def test_remote_code_without_autobert_zero_gives_the_packages_outputs_exactly(exports: dict[str, Export],
                                                                               tmp_path: Path) -> None:
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    outputs, report = run_fresh(sys.executable, exports, tmp_path, env)
    check_fresh_results(outputs, report, exports)


def test_the_folder_holds_verbatim_portable_modules_that_import_only_torch_and_transformers(
        exports: dict[str, Export]) -> None:
    allowed = {"torch", "transformers"} | set(sys.stdlib_module_names)
    for export in exports.values():
        names = sorted(p.stem for p in export.folder.glob("*.py"))
        assert names == sorted((*PORTABLE_MODULES, CUSTOM_OPS_MODULE))
        for name in PORTABLE_MODULES:
            assert (export.folder / f"{name}.py").read_bytes() == (COMPILER / f"{name}.py").read_bytes()
        for path in export.folder.glob("*.py"):
            assert set(dynamic_module_utils.get_imports(path)) <= allowed, path.name
            for relative in dynamic_module_utils.check_imports(path):  # transformers' own check
                assert (export.folder / f"{relative}.py").is_file()
    custom = (exports["custom_op"].folder / f"{CUSTOM_OPS_MODULE}.py").read_text()
    assert "def tanh_gelu" in custom and "APPROXIMATE = 'tanh'" in custom
    assert "import torch.nn.functional as F" in custom
    empty = (exports["bert"].folder / f"{CUSTOM_OPS_MODULE}.py").read_bytes()
    assert empty == (COMPILER / f"{CUSTOM_OPS_MODULE}.py").read_bytes()  # no custom op: the package's copy


def test_portable_modules_import_nothing_of_the_package() -> None:
    for name in (*PORTABLE_MODULES, CUSTOM_OPS_MODULE):
        tree = ast.parse((COMPILER / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.level == 1 and node.module in (*PORTABLE_MODULES, CUSTOM_OPS_MODULE), (name, node.module)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert all(m.split(".")[0] != "autobert_zero" for m in modules), name


def test_config_json_has_the_compiled_genotype_and_auto_map(exports: dict[str, Export]) -> None:
    saved = json.loads((exports["figure7"].folder / "config.json").read_text())
    assert saved["auto_map"] == AUTO_MAP
    compiled = saved["compiled_genotype"]
    figure7 = parse_genotype((GENOTYPES / "autobert_zero.abz").read_text())
    assert len(compiled["layers"]) == figure7.num_layers and compiled["head_dim"] == 8
    assert compiled["layers"][0] == {"conv": "light", "kernel": 65, "dilation": 1}
    assert compiled["layers"][1] == {"attention": "a2"}
    assert set(compiled["graphs"]) == {g.name for g in figure7.graphs}
    assert compiled["graphs"]["a2"]["source"] == str(figure7.graph("a2").output)


def test_the_package_loads_the_folder_as_before_and_writes_the_same_export(exports: dict[str, Export],
                                                                             tmp_path: Path) -> None:
    export = exports["sampled"]
    loaded = AutoModelForMaskedLM.from_pretrained(export.folder).eval()
    assert type(loaded) is AutoBertZeroForMaskedLM  # the package's class: no remote code runs here
    with torch.no_grad():
        assert torch.equal(loaded(**padded_batch()).logits, export.expected)
    loaded.save_pretrained(tmp_path)
    again, before = (json.loads((f / "config.json").read_text()) for f in (tmp_path, export.folder))
    assert again["compiled_genotype"] == before["compiled_genotype"]


def test_the_portable_classes_refuse_an_edited_compiled_genotype_naming_config_json(exports: dict[str, Export],
                                                                                   tmp_path: Path) -> None:
    """In this process too: `portable_model`'s classes are the remote code (built from the JSON alone)."""
    folder = tampered(exports["figure7"].folder, tmp_path / "edited",
                      lambda config: config["compiled_genotype"]["layers"][0].update(kernel=31))
    with pytest.raises(ArchitectureMismatchError, match=r"edited/config\.json describes .*layers\.0\.conv\."
                                                        r"depthwise_weight \(4×65 saved, 4×31 built\)"):
        portable_model.AutoBertZeroForMaskedLM.from_pretrained(folder)
    loaded = portable_model.AutoBertZeroForMaskedLM.from_pretrained(exports["figure7"].folder).eval()
    with torch.no_grad():
        assert torch.equal(loaded(**padded_batch()).logits, exports["figure7"].expected)


def test_the_package_classes_add_only_the_genotype_parsing_to_the_portable_ones() -> None:
    added = {
        hf_model.AutoBertZeroPreTrainedModel: {"save_pretrained", "check_weights_on_load", "from_pretrained"},
        hf_model.AutoBertZeroModel: {"compile_encoder"},
        hf_model.AutoBertZeroForMaskedLM: {"backbone_class"},
        hf_model.AutoBertZeroForSequenceClassification: {"backbone_class"},
        layers.AttentionMixer: {"__init__", "set_graph"},
        conv.ConvMixer: {"__init__"},
    }
    for cls, names in added.items():
        own = {n for n in vars(cls) if not n.startswith("_") or n == "__init__"} - {"config_class"}  # set by HF
        assert own == names, (cls, own ^ names)
    assert issubclass(hf_model.AutoBertZeroForMaskedLM, portable_model.AutoBertZeroForMaskedLM)
    assert layers.EncoderLayer is portable_layers.EncoderLayer and list(CONV_TYPES) == list(portable_layers.CONV_KINDS)


def test_a_supernet_is_saved_without_remote_code(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    supernet = AutoBertZeroSupernetForMaskedLM(AutoBertZeroConfig(genotype=(GENOTYPES / "bert.abz").read_text(),
                                                                  **TINY_SIZES))
    with caplog.at_level(logging.WARNING, logger="autobert_zero.compiler.remote_code"):
        supernet.save_pretrained(tmp_path)
    assert "without remote code" in caplog.text and "SuperLayer" in caplog.text
    assert not list(tmp_path.glob("*.py")) and "auto_map" not in json.loads((tmp_path / "config.json").read_text())


def test_custom_op_sources() -> None:
    text = custom_ops_module({"gelu": torch.nn.functional.gelu, "mul": torch.mul, "g2": tanh_gelu})
    assert "'gelu': torch.nn.functional.gelu," in text and "'mul': torch.mul," in text and "def tanh_gelu" in text
    offset = 1.5

    def nested(x: torch.Tensor) -> torch.Tensor:
        return x + offset

    for bad, reason in ((lambda x: x, "lambda"), (nested, "nested"), (via_helper, "reads the global 'tanh_gelu'")):
        with pytest.raises(NotPortableError, match=reason):
            custom_ops_module({"bad": bad})


def test_a_custom_op_without_implementation_at_save_time_saves_without_remote_code(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    language = Language(grammar_with("gelu"), {**DEFAULT_OPS, "gelu": GELU})
    register_op_impl("gelu", tanh_gelu)
    config = AutoBertZeroConfig(genotype=GELU_GENOTYPE, **TINY_SIZES)
    encoder = build_encoder(parse_genotype(GELU_GENOTYPE, language=language), config, language=language, init_std=None)
    model = AutoBertZeroForMaskedLM(config, encoder=encoder)
    unregister_op_impl("gelu")
    with caplog.at_level(logging.WARNING, logger="autobert_zero.compiler.remote_code"):
        model.save_pretrained(tmp_path)
    assert "without remote code" in caplog.text and "'gelu' has no torch implementation" in caplog.text
    assert (tmp_path / "model.safetensors").is_file() and not list(tmp_path.glob("*.py"))


def test_compiled_genotype_errors_name_config_json(exports: dict[str, Export], tmp_path: Path) -> None:
    saved = json.loads((exports["bert"].folder / "config.json").read_text())
    config = portable_model.AutoBertZeroConfig(**{k: v for k, v in saved.items() if k != "genotype"})
    portable_model.AutoBertZeroModel(config)  # builds from the JSON alone
    for edit, message in (({"format": "v0"}, "format"), ({"head_dim": 4}, "head dim"),
                          ({"layers": [{"conv": "wide", "kernel": 3, "dilation": 1}]}, "layer 0"),
                          ({"layers": [{"attention": "missing"}]}, "layer 0")):
        config.compiled_genotype = {**saved["compiled_genotype"], **edit}
        with pytest.raises(ValueError, match=rf"config\.json.*{message}"):
            portable_model.AutoBertZeroModel(config)


def fresh_venv(work: Path) -> tuple[str, dict[str, str]]:
    """A new venv with torch (pinned CPU build, as tests/app/test_packaging.py installs it) and this
    transformers version, nothing else; returns its python and a clean environment."""
    import transformers

    venv = work / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(HF_HOME=str(work / "hf"), HF_HUB_OFFLINE="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", "torch==2.13.0", f"transformers=={transformers.__version__}"],
                   check=True, env=env, capture_output=True, text=True, timeout=1800)
    return python, env


@pytest.mark.slow
def test_remote_code_in_a_fresh_venv_with_only_torch_and_transformers(exports: dict[str, Export],
                                                                       tmp_path: Path) -> None:
    python, env = fresh_venv(tmp_path)
    found = subprocess.run([python, "-I", "-c", "import importlib.util as u; print([n for n in ('autobert_zero', "
                            "'lark', 'deepspeed', 'datasets') if u.find_spec(n)])"], cwd=tmp_path, env=env,
                           capture_output=True, text=True)
    assert found.stdout.strip() == "[]", found.stdout + found.stderr
    outputs, report = run_fresh(python, exports, tmp_path, env)
    check_fresh_results(outputs, report, exports)


@pytest.fixture(autouse=True)
def _no_leftover_gelu() -> Iterator[None]:
    yield
    unregister_op_impl("gelu")

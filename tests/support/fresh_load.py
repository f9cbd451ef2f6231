"""Load exported folders with plain transformers, in a process where autobert_zero cannot be imported.

Run as a script, isolated (`python -I fresh_load.py JOB.json`): it blocks `BLOCKED` (a `None` entry in
`sys.modules` makes `import x` raise ImportError and `importlib.util.find_spec("x")` return None, so
transformers also sees them as absent) before importing transformers, then for each case of the job loads
`folder` with the named Auto class and `trust_remote_code=True`, runs the saved inputs in eval mode and
stores the named output. It imports nothing of the tests either (under -I the source tree is not on
sys.path), so it is also what the fresh-venv test runs.

JOB.json: {"inputs": "inputs.pt", "out": "outputs.pt", "cases": [{"name": ..., "folder": ...,
"auto": "AutoModelForMaskedLM", "output": "logits"}]}. outputs.pt: {name: tensor}; a case whose load fails
stores its error text under "errors" instead. The last stdout line is a JSON report: the errors, the model
classes' modules and whether any blocked module was imported.
"""

from __future__ import annotations

import importlib.util
import json
import sys

BLOCKED = ("autobert_zero", "lark", "deepspeed", "datasets")


def block() -> None:
    for name in BLOCKED:
        sys.modules[name] = None  # type: ignore[assignment]
        assert importlib.util.find_spec(name) is None


def main(job_file: str) -> None:
    block()
    import torch
    import transformers

    with open(job_file, encoding="utf-8") as file:
        job = json.load(file)
    inputs = torch.load(job["inputs"], weights_only=True)
    outputs: dict[str, object] = {}
    errors: dict[str, str] = {}
    modules: dict[str, str] = {}
    for case in job["cases"]:
        auto = getattr(transformers, case["auto"])
        try:
            model = auto.from_pretrained(case["folder"], trust_remote_code=True).eval()
        except Exception as error:  # the test asserts on the message
            errors[case["name"]] = f"{type(error).__name__}: {error}"
            continue
        modules[case["name"]] = type(model).__module__
        with torch.no_grad():
            outputs[case["name"]] = getattr(model(**inputs), case["output"])
    outputs["errors"] = errors
    torch.save(outputs, job["out"])
    leaked = sorted(m for m, v in sys.modules.items() if v is not None and m.split(".")[0] in BLOCKED)
    print(json.dumps({"errors": errors, "modules": modules, "leaked": leaked}))


if __name__ == "__main__":
    main(sys.argv[1])

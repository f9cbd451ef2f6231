"""Quick-start benchmark: the README's first command after the install, timed stage by stage.

Runs the five `abz` commands of the quick start (`supernet`, `search`, `report`, `export`, `retrain` with
`configs/tiny.yaml`) in a temporary folder, each as a fresh process of the `abz` beside this interpreter, from
the repository root, with a fresh empty `$HOME` (so the WordPiece tokenizer is trained as in a fresh clone
rather than read from `~/.cache/autobert_zero`). Records the wall seconds of each stage, the load average
around the run, and the search's own summary (`summary.json`): the best candidate's fitness and attention
formulas, the seeds' (vanilla BERT, Figure 7) fitness, and all three scored again on the final supernet
weights; and the retrain's held-out MLM loss of the search's best and of vanilla BERT, trained from scratch at
equal parameters. Writes benchmarks/results/quickstart.json.

    python -m benchmarks.bench_quickstart [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.report import print_table, write_json

REPO = Path(__file__).resolve().parents[1]
CONFIG = "configs/tiny.yaml"
# The quick start's commands, with `runs/quickstart` replaced by {out}.
STAGES = (
    ("supernet", ["supernet", "--config", CONFIG, "--out", "{out}/supernet"]),
    ("search", ["search", "--config", CONFIG, "--supernet", "{out}/supernet", "--out", "{out}/search"]),
    ("report", ["report", "{out}/search"]),
    ("export", ["export", "{out}/search", "--top", "3", "--out", "{out}/best"]),
    ("retrain", ["retrain", "{out}/search", "--config", CONFIG, "--out", "{out}/retrain", "--baselines",
                 "genotypes/bert.abz", "--lrs", "1e-3", "--glue"]),
)


def run_stage(abz: Path, words: list[str], out: Path, env: dict[str, str]) -> tuple[float, int, str]:
    argv = [str(abz), *(w.format(out=out) for w in words)]
    t0 = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    return seconds, done.returncode, done.stdout + done.stderr


def best_formulas(text: str) -> list[str]:
    """The attention formulas the summary prints under its "best fitness" line (indented lines)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("best fitness")), None)
    if start is None:
        return []
    formulas = []
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        formulas.append(line.strip())
    return formulas


def search_figures(search: Path) -> dict[str, Any]:
    """The search's summary, from its own files: summary.json and the seed lines of history.jsonl."""
    summary = json.loads((search / "summary.json").read_text(encoding="utf-8"))
    history = [json.loads(line) for line in (search / "history.jsonl").read_text(encoding="utf-8").splitlines()
               if line.strip()]
    final = summary.get("final_supernet_scores") or {}
    best = summary.get("best") or {}
    seeds = {Path(line["detail"]).name: {"id": line["id"], "fitness": line["fitness"], "status": line["status"],
                                         "final_supernet_score": final.get(line["id"])}
             for line in history if line["mutation"] == "seed"}
    return {"candidates": summary["candidates"], "fitness_calls": summary["fitness_calls"],
            "duplicates": summary["duplicates"], "invalid_children_resampled": sum(summary["rejections"].values()),
            "best": {"index": best.get("index"), "id": best.get("id"), "fitness": best.get("fitness"),
                     "final_supernet_score": final.get(best.get("id")),
                     "formulas": best_formulas(summary["text"])},
            "seeds": seeds, "summary_text": summary["text"]}


def retrain_figures(folder: Path) -> dict[str, Any]:
    """Each retrained arm's held-out MLM loss, sizes and lr (one seed), from the retrain's results.json."""
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    arms = []
    for arm in results["arms"]:
        loss = results["analysis"]["arms"][arm["name"]]["heldout_loss"]["mean"]
        arms.append({"name": arm["name"], "genotype_id": arm["genotype_id"], "params": arm["params"],
                     "intermediate_size": arm["intermediate_size"], "lr": arm["lr"], "heldout_loss": loss,
                     "rescored_loss": arm["rescored_loss"], "search_fitness": arm["search_fitness"]})
    first = next(iter(next(iter(results["pretrain"].values())).values()))
    return {"arms": arms, "steps": results["pretrain_steps"], "heldout_blocks": results["heldout_blocks"],
            "heldout_offset": first.get("heldout_offset", 0), "seeds": results["seeds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", help="run in this folder and keep it (default: a temporary folder, removed)")
    args = parser.parse_args()
    abz = Path(sys.executable).with_name("abz")
    if not abz.is_file():
        parser.error(f"{abz} not found: run with the interpreter of the environment `abz` is installed in")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="abz-quickstart-"))
    work.mkdir(parents=True, exist_ok=True)
    out, home = work / "runs", work / "home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "HOME": str(home)}
    env.pop("XDG_CACHE_HOME", None)
    load_before = os.getloadavg()
    stages: list[dict[str, Any]] = []
    try:
        for name, words in STAGES:
            seconds, code, output = run_stage(abz, words, out, env)
            stages.append({"stage": name, "command": "abz " + " ".join(words).format(out="runs/quickstart"),
                           "seconds": round(seconds, 2), "exit_code": code})
            if code != 0:
                sys.exit(f"{name} failed with exit code {code}:\n{output[-4000:]}")
        figures = search_figures(out / "search")
        retrained = retrain_figures(out / "retrain")
        exported = sorted(p.name for p in (out / "best").iterdir() if p.is_dir())
        hf_folders = sorted(p.parent.name for p in (out / "best").glob("*/hf") if p.is_dir())
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    total = sum(s["seconds"] for s in stages)
    print_table("quick start (after the install)", ["stage", "seconds"],
                [[s["stage"], s["seconds"]] for s in stages] + [["total", total]])
    best = figures["best"]
    print("retrain, held-out MLM loss: " + "; ".join(f"{a['name']} {a['heldout_loss']:.4f}" for a in retrained["arms"]))
    print(f"\nbest {best['fitness']:.4f} (final supernet {best['final_supernet_score']}); "
          + "; ".join(f"{name} {s['fitness']:.4f} (final {s['final_supernet_score']})"
                      for name, s in figures["seeds"].items()))
    write_json("quickstart", {
        "command": "python -m benchmarks.bench_quickstart", "config": CONFIG, "abz": str(abz),
        "home": "a fresh empty folder (tokenizer trained, no cache)", "cpus": os.cpu_count(),
        "load_average_1min": {"before": round(load_before[0], 2), "after": round(load_after[0], 2)},
        "stages": stages, "total_seconds": round(total, 2), "search": figures, "retrain": retrained,
        "export": {"folders": exported, "with_hf": hf_folders,
                   "weights": "supernet-inherited: the supernet's weights and tokenizer, before the search's "
                              "adaptation steps (abz export)"}})


if __name__ == "__main__":
    main()

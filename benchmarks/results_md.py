"""Write benchmarks/RESULTS.md from benchmarks/results/*.json: every figure in it is read or computed here.

One section per benchmark family (quick start, ranking audit, reference budget, search, compiler, pre-training
throughput, short run, start-up, supernet switch), each with the command that produced it, its key figures as
tables, the commit it was measured at and its plots; last, the superseded audit at a 1,500-step reference.
Sub-group Kendall τ (within the Figure-7 family, within the sampled genotypes and BERT, on a subset) are
computed from the per-candidate scores the audit JSONs hold, with scipy.stats.kendalltau (τ-b, as the audit).

    python -m benchmarks.results_md            # rewrite benchmarks/RESULTS.md
    python -m benchmarks.results_md --check    # exit 1 if benchmarks/RESULTS.md is not what this writes
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from benchmarks.audit_table import interval, markdown

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
TARGET = HERE / "RESULTS.md"
FAMILY = ("figure7", "neighbour")  # Figure 7 and its one-layer mutants
SAMPLED = ("random", "bert")  # sampled genotypes and vanilla BERT
# The project's goals (issue text), which results are compared against; not results themselves.
GOAL_OP_SHARE = 0.6
GOAL_OVERHEAD_MS = 10.0

Json = dict[str, Any]


def load(name: str) -> Json:
    data: Json = json.loads((RESULTS / f"{name}.json").read_text(encoding="utf-8"))
    return data


# ---------------------------------------------------------------- formatting


def signed(x: float | None) -> str:
    return "—" if x is None else f"{x:+.2f}"


def span(values: Iterable[float], fmt: str = "{:+.2f}", sep: str = " to ") -> str:
    vals = sorted(values)
    low, high = fmt.format(vals[0]), fmt.format(vals[-1])
    return low if low == high else f"{low}{sep}{high}"


def ratio(x: float | None) -> str:
    return "" if x is None else f"{x:.0f}×"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def commit_of(data: Json) -> str:
    c = data.get("commit") or {}
    sha = c.get("sha")
    if not sha:
        return "unknown"
    note = " (backfilled from git log)" if c.get("source") else " (uncommitted changes)" if c.get("dirty") else ""
    return f"`{sha[:7]}`{note}"


def cite(name: str) -> str:
    return f"`results/{name}.json`, commit {commit_of(load(name))}, {load(name)['when'][:10]}"


def source(*names: str) -> str:
    """The line under each section naming its JSON files and their commits."""
    return "Source: " + "; ".join(cite(n) for n in names) + "."


def png(name: str, alt: str) -> str:
    return f"![{alt}](results/{name}.png)"


def code(command: str) -> str:
    return f"```bash\n{command}\n```"


# ---------------------------------------------------------------- audit helpers


def biws_keys(audit: Json) -> list[str]:
    return [k for k, e in audit["estimators"].items() if e["kind"] == "biws"]


def ks(audit: Json) -> str:
    return " / ".join(str(audit["estimators"][k]["k"]) for k in biws_keys(audit))


def tau(audit: Json, key: str) -> float:
    value: float = audit["estimators"][key]["kendall_tau"]["value"]
    return value


def taus(audit: Json, kind: str) -> list[float]:
    return [e["kendall_tau"]["value"] for e in audit["estimators"].values() if e["kind"] == kind]


def ratios(audit: Json, kind: str) -> list[float]:
    return [e["cost_ratio"] for e in audit["estimators"].values() if e["kind"] == kind and e["cost_ratio"]]


def kendall(x: Sequence[float], y: Sequence[float]) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(x, y).statistic)


def sub_tau(audit: Json, key: str, keep: Callable[[Json], bool],
            reference: Callable[[Json], float] | None = None) -> float:
    """Kendall τ of estimator `key` against the reference (or `reference(candidate)`) among the kept candidates."""
    chosen = [c for c in audit["candidates"] if keep(c)]
    ref = reference or (lambda c: c["reference"]["score"])
    return kendall([c["scores"][key]["score"] for c in chosen], [ref(c) for c in chosen])


GROUP_ORDER = {"bert": 0, "random": 1, "figure7": 2, "neighbour": 2}
"""A rule that knows only each candidate's group: BERT < sampled genotypes < the Figure-7 family (tied inside)."""


def group_rule_tau(audit: Json) -> float:
    """Kendall τ-b of the group rule (`GROUP_ORDER`) against the reference: what the coarse order alone gives."""
    chosen = [c for c in audit["candidates"] if c["kind"] in GROUP_ORDER]
    return kendall([GROUP_ORDER[c["kind"]] for c in chosen], [c["reference"]["score"] for c in chosen])


def in_kinds(*kinds: str) -> Callable[[Json], bool]:
    return lambda c: c["kind"] in kinds


def count(audit: Json, *kinds: str) -> int:
    return sum(c["kind"] in kinds for c in audit["candidates"])


def family_losses(audit: Json, kinds: Sequence[str]) -> str:
    return span((-c["reference"]["score"] for c in audit["candidates"] if c["kind"] in kinds), "{:.2f}", "–")


def supernet_label(audit: Json) -> str:
    """The supernet variant, read from the audit's recorded command and supernet steps."""
    words = audit["command"].split()

    def values(flag: str) -> list[str]:
        if flag not in words:
            return []
        rest = words[words.index(flag) + 1:]
        return [w for w in rest[:next((i for i, w in enumerate(rest) if w.startswith("--")), len(rest))]
                if w != "True"]

    if "--fair" in words:
        exponent = values("--fair-exponent")
        kind = f"tempered fair (`fair_exponent: {exponent[0]}`)" if exponent else "fair"
    elif "--population" in words:
        kind = "population"
    elif "--held-out" in words:
        kind = "held-out population"
    else:
        kind = "uniform"
    label = f"{kind} {audit['supernet_steps'] // 1000}k"
    branch = values("--per-branch")
    if branch == ["uses_v"]:
        label += " + uses_v split"
    elif branch:
        label += " + per-branch " + " and ".join(branch)
    return label


def audit_row_table(audit: Json) -> str:
    """The headline audit table: BIWS per k, then the rivals summarised, then the noise ceiling."""
    est = audit["estimators"]
    rows = []
    for key in biws_keys(audit):
        e = est[key]
        rows.append([f"BIWS k = {e['k']}", f"**{interval(e['kendall_tau'])}**", signed(e["spearman_rho"]["value"]),
                     signed(e["top_half_tau"]), f"{e['seconds_per_candidate']:.2f}", ratio(e["cost_ratio"])])
    scratch = [e for e in est.values() if e["kind"] == "scratch"]
    rows.append([f"scratch at the seconds of k = {' / '.join(e['matched_to'].split('k')[-1] for e in scratch)} "
                 f"({' / '.join(str(e['steps']) for e in scratch)} steps)",
                 " / ".join(signed(e["kendall_tau"]["value"]) for e in scratch), "", "",
                 " / ".join(f"{e['seconds_per_candidate']:.1f}" for e in scratch), ""])
    p = est["params"]
    rows.append(["parameters alone", interval(p["kendall_tau"]), signed(p["spearman_rho"]["value"]),
                 signed(p["top_half_tau"]), "0", ""])
    rows.append(["rank combination BIWS k + parameters", span(taus(audit, "rank-combination")), "", "", "", ""])
    hurdles = [e for e in est.values() if e["kind"] == "hurdle"]
    if hurdles:
        rows.append(["hurdle: BIWS k keeps half, scratch orders it", span(taus(audit, "hurdle")), "", "",
                     span((e["seconds_per_candidate"] for e in hurdles), "{:.1f}", "–"),
                     span(ratios(audit, "hurdle"), "{:.0f}×", "–")])
    ref = audit["reference"]
    rows.append(["**noise ceiling** (τ between the two reference seeds)", f"**{interval(ref['noise_ceiling_tau'])}**",
                 "", "", f"{ref['seconds_per_candidate']:.0f} (one reference run)", ""])
    return table(["estimator", "Kendall τ [95% CI]", "Spearman ρ", "τ in the best half", "s / candidate",
                  "cheaper than one reference run"], rows)


def verdict(audit: Json) -> str:
    v = audit["verdict"]
    names = {"tau_at_least_0_6": "τ ≥ 0.6", "cost_ratio_at_least_20": "≥ 20× cheaper",
             "above_matched_scratch": "above matched scratch", "above_params": "above parameters"}
    return ", ".join(f"{label} **{str(v[key]).lower()}**" for key, label in names.items() if key in v)


def subgroup_table(audits: Sequence[tuple[str, Json]]) -> str:
    header = ["Kendall τ, BIWS k = " + ks(audits[0][1]), *[name for name, _ in audits]]
    rows = []
    for label, kinds in ((f"within the sampled genotypes and BERT ({count(audits[0][1], *SAMPLED)})", SAMPLED),
                         (f"within the Figure-7 family ({count(audits[0][1], *FAMILY)})", FAMILY)):
        rows.append([label, *(" / ".join(f"{sub_tau(a, k, in_kinds(*kinds)):+.2f}" for k in biws_keys(a))
                              for _, a in audits)])
    return table(header, rows)


# ---------------------------------------------------------------- sections


def quickstart() -> str:
    q = load("quickstart")
    s = q["search"]
    best, seeds = s["best"], s["seeds"]
    names = {"bert.abz": "vanilla BERT (`bert.abz`)", "autobert_zero.abz": "Figure 7 (`autobert_zero.abz`)"}

    def score(x: float | None) -> str:
        return "—" if x is None else f"{x:.3f}"

    rows = [[f"best (candidate #{best['index']})", score(best["fitness"]), score(best["final_supernet_score"])]]
    rows += [[names.get(n, n), score(v["fitness"]), score(v["final_supernet_score"])] for n, v in seeds.items()]
    stages = [[f"`{st['command']}`", f"{st['seconds']:.1f}"] for st in q["stages"]]
    return "\n\n".join([
        "## Quick start",
        code(q["command"]),
        f"The {len(q['stages'])} `abz` commands of the README's first quick-start command, after the install (not "
        "timed here), "
        f"each a fresh process on `{q['config']}`, with an empty `$HOME` so the tokenizer is trained as in a fresh "
        f"clone; {q['cpus']} CPUs, load average {q['load_average_1min']['before']} before and "
        f"{q['load_average_1min']['after']} after" + (f": {q['conditions']}." if q.get("conditions") else "."),
        table(["stage", "seconds"], [*stages, ["**total**", f"**{q['total_seconds']:.1f}**"]]),
        f"The search's summary (`summary.json`): {s['candidates']} candidates, {s['fitness_calls']} fitness "
        f"evaluations, {s['duplicates']} duplicates, {s['invalid_children_resampled']} invalid children resampled. "
        "Fitness is −(held-out MLM loss), higher is better; with the supernet trained on between rounds, scores "
        "of different rounds are not on one scale, so the summary scores the best and the seeds again on the "
        "final supernet weights:",
        table(["genotype", "fitness when evaluated", "on the final supernet"], rows),
        "The best candidate's attention graphs: " + ", ".join(f"`{f}`" for f in best["formulas"]) + ". "
        "One run, one seed, a 300-step supernet: this shows the pipeline, not a discovery. "
        f"`abz export` wrote {len(q['export']['folders'])} folders ({', '.join(q['export']['folders'])}), "
        f"each with a Hugging Face folder ({q['export']['weights']}).",
        *quickstart_retrain(q.get("retrain")),
        source("quickstart") + (f" ({q['commit_note']}.)" if q.get("commit_note") else ""),
    ])


def quickstart_retrain(r: Json | None) -> list[str]:
    """The quick start's `abz retrain` stage: each arm trained from scratch at equal parameters (one seed)."""
    if not r:
        return []
    rows = [[a["name"], f"{a['params']:,}", a["intermediate_size"],
             "—" if a["rescored_loss"] is None else f"{a['rescored_loss']:.3f}", f"{a['heldout_loss']:.4f}"]
            for a in r["arms"]]
    return [f"`abz retrain` trained the search's best (picked by its loss re-scored on held-out blocks the "
            f"search never scored) and vanilla BERT from scratch at equal parameters, {r['steps']} steps, "
            f"seed {', '.join(map(str, r['seeds']))}, and scored both on {r['heldout_blocks']} held-out blocks"
            + (" (from block 0: the blocks the search's fitness scored — `evaluate.eval_offset`/`eval_limit` of the "
               "config — held out from every run's training, but not fresh to the selection):"
               if r.get("heldout_offset", 0) == 0 else f" (from block {r['heldout_offset']}):"),
            table(["arm", "parameters", "FFN width", "re-scored supernet loss", "held-out MLM loss"], rows),
            "One seed: no interval, no test; a difference of a few hundredths is within seed noise at this size."]


def audit_current() -> str:
    a = load("audit-24-pop4k-ref3000")
    a48 = load("audit-48-pop4k-ref3000")
    held = load("audit-24-heldout4k")
    ref, n = a["reference"], a["scored"]
    est48 = a48["estimators"]
    ids24 = {c["id"] for c in a["candidates"]}
    first = [sub_tau(a48, k, lambda c: c["id"] in ids24) for k in biws_keys(a48)]
    new = [sub_tau(a48, k, lambda c: c["id"] not in ids24) for k in biws_keys(a48)]
    top_half = [a["estimators"][k]["top_half_tau"] for k in biws_keys(a)]
    cost = a["estimators"]["biws_k5"]
    return "\n\n".join([
        "## Ranking audit — how far the BIWS fitness can be trusted",
        code(f"OMP_NUM_THREADS=1 {a['command']}"),
        f"`abz audit` (this is its benchmark driver) draws {n} candidates at the supernet's depth and width: "
        f"BERT, Figure 7, {count(a, 'neighbour')} one-layer mutants of Figure 7 and {count(a, 'random')} sampled "
        f"genotypes ({a['num_layers']} layers, hidden {a['hidden_size']}, {a['num_attention_heads']} heads, "
        f"{a['seq_len']}-token blocks, `{a['config']}` on WikiText-2 raw + NLTK). The reference is "
        f"{ref['steps']:,} scratch steps × {len(ref['seeds'])} seeds, averaged; every estimator is scored "
        f"against it. The supernet was trained {a['supernet_steps']:,} steps on the {n} candidates "
        f"(population sampling). One reference run took {ref['seconds_per_candidate']:.0f} s timed in the "
        "audit's own process; cost ratios are against that one run (twice that against the two-seed reference).",
        audit_row_table(a),
        png("audit-24-pop4k-ref3000", "ranking audit, 3,000-step reference, population supernet, 24 candidates"),
        f"The audit's verdict (`verdict`): {verdict(a)}. " + source("audit-24-pop4k-ref3000"),
        f"**Most of that τ is the coarse order.** Reference losses: the Figure-7 family "
        f"{family_losses(a, FAMILY)}, the sampled genotypes and BERT {family_losses(a, SAMPLED)}. "
        f"Inside the best half BIWS ranks at only {span(top_half)}: a search that keeps the better part of a "
        "population needs the coarse order, but this is not a fine ranking of near-equals. A rule that knows only "
        "the group (BERT < sampled genotypes < the Figure-7 family, tied inside) ranks the same candidates at "
        f"τ {signed(group_rule_tau(a))} ({a48['scored']} candidates: {signed(group_rule_tau(a48))}), against BIWS's "
        f"{span([a['estimators'][k]['kendall_tau']['value'] for k in biws_keys(a)])} "
        f"({span([a48['estimators'][k]['kendall_tau']['value'] for k in biws_keys(a48)])}).",
        f"### {a48['scored']} candidates",
        code(a48["command"]),
        f"The {n} above plus {a48['scored'] - n} more drawn the same way ({count(a48, *FAMILY)} of "
        f"{a48['scored']} are Figure 7 or its mutants), a population supernet of {a48['supernet_steps']:,} steps "
        f"on all {a48['scored']}, k = {ks(a48)} only. A second `--reference-only` process filled the reference "
        "cache from the other end.",
        table(["Kendall τ", *(f"BIWS k = {est48[k]['k']}" for k in biws_keys(a48))], [
            ["all, [95% CI]", *(interval(est48[k]["kendall_tau"]) for k in biws_keys(a48))],
            ["Spearman ρ", *(signed(est48[k]["spearman_rho"]["value"]) for k in biws_keys(a48))],
            [f"the {n} of the table above", *(signed(t) for t in first)],
            [f"the {a48['scored'] - n} new ones", *(signed(t) for t in new)],
            [f"within the sampled genotypes and BERT ({count(a48, *SAMPLED)})",
             *(signed(sub_tau(a48, k, in_kinds(*SAMPLED))) for k in biws_keys(a48))],
            [f"within the Figure-7 family ({count(a48, *FAMILY)})",
             *(signed(sub_tau(a48, k, in_kinds(*FAMILY))) for k in biws_keys(a48))],
            ["cheaper than one reference run", *(ratio(est48[k]["cost_ratio"]) for k in biws_keys(a48))],
        ]),
        f"Noise ceiling {interval(a48['reference']['noise_ceiling_tau'])}; matched scratch "
        f"{span(taus(a48, 'scratch'))}; parameters {interval(est48['params']['kendall_tau'])}; rank combination "
        f"{span(taus(a48, 'rank-combination'))}; hurdle {span(taus(a48, 'hurdle'))}; one reference run "
        f"{a48['reference']['seconds_per_candidate']:.0f} s. Verdict: {verdict(a48)}. "
        + source("audit-48-pop4k-ref3000"),
        "### A supernet that never saw the candidates",
        code(held["command"]),
        f"The table above is the most favourable case: the supernet trained on exactly the candidates it ranks. "
        f"Here it trains {held['supernet_steps']:,} steps on {held['candidates_requested']} *other* candidates "
        f"(the mutants and samples that the {a48['scored']}-candidate set adds) and ranks the same {n}, as a search "
        "scores a new child before the supernet has trained on it.",
        table(["Kendall τ", *(f"k = {held['estimators'][k]['k']}" for k in biws_keys(held))], [
            ["BIWS, held-out population [95% CI]", *(interval(held["estimators"][k]["kendall_tau"])
                                                     for k in biws_keys(held))],
            ["BIWS, the audit's own population", *(interval(a["estimators"][k]["kendall_tau"])
                                                    for k in biws_keys(held))],
            ["τ in the best half, held-out / own", *(f"{held['estimators'][k]['top_half_tau']:+.2f} / "
                                                     f"{a['estimators'][k]['top_half_tau']:+.2f}"
                                                     for k in biws_keys(held))],
            [f"within the sampled genotypes and BERT ({count(held, *SAMPLED)}), held-out / own",
             *(f"{sub_tau(held, k, in_kinds(*SAMPLED)):+.2f} / {sub_tau(a, k, in_kinds(*SAMPLED)):+.2f}"
               for k in biws_keys(held))],
            [f"within the Figure-7 family ({count(held, *FAMILY)}), held-out / own",
             *(f"{sub_tau(held, k, in_kinds(*FAMILY)):+.2f} / {sub_tau(a, k, in_kinds(*FAMILY)):+.2f}"
               for k in biws_keys(held))],
        ]),
        f"Matched scratch {span(taus(held, 'scratch'))}, parameters {signed(tau(held, 'params'))}, BIWS "
        f"{span(ratios(held, 'biws'), '{:.0f}×', '–')} cheaper than one reference run. Verdict: {verdict(held)}. "
        "The held-out supernet ranks the Figure-7 family (whose layers it trained through their siblings) about "
        "as well as or better than the supernet trained on them, and genotypes unlike anything it trained "
        "weakly: scores from a supernet favour what is near its training population. "
        + png("audit-24-heldout4k", "ranking audit, held-out population supernet") + " "
        + source("audit-24-heldout4k"),
        "### Cost",
        f"Per candidate, BIWS k = {cost['k']} took {cost['seconds_per_candidate']:.1f} s against "
        f"{ref['seconds_per_candidate']:.0f} s for one reference seed ({ratio(cost['cost_ratio'])}). The "
        f"supernet's own training is not in that: the held-out supernet's {held['supernet_steps']:,} steps took "
        f"{held['supernet_seconds_this_run']:.0f} s, which over {n} candidates adds "
        f"{held['supernet_seconds_this_run'] / n:.0f} s each (an amortised "
        f"{ref['seconds_per_candidate'] / (cost['seconds_per_candidate'] + held['supernet_seconds_this_run'] / n):.0f}×"
        " per reference seed); the saving grows with every candidate a search scores on the same supernet.",
    ])


def reference_budget() -> str:
    two = load("reference_budget-2seeds")
    six = load("reference_budget-6000-subset-b")
    one = load("reference_budget")
    own = load("audit-24-pop4k-ref3000")
    old = load("audit-24-pop4k")
    held = load("audit-24-heldout4k")
    rows = []
    for name, figures in two["kendall_tau"].items():
        if name == "audit-24-pop4k-ref3000":  # the same supernet and scores as audit-24-pop4k
            continue
        audit = load(name)
        cells = [figures[k] for k in biws_keys(audit)]
        rows.append((cells[0], [supernet_label(audit) + f" (`{name}`)", " / ".join(f"{c:.2f}" for c in cells)]))
    rows.sort(key=lambda r: -r[0])
    longer = {c["name"]: c["longer_reference"]["0"] for c in six["candidates"]}
    names = six["only"]
    loss_3000 = {c["name"]: -c["reference"]["score"] for c in own["candidates"]}
    worst = max(names, key=lambda m: longer[m] - loss_3000[m])  # the candidate the longer run moved most

    def vs6000(audit: Json, drop: Sequence[str] = ()) -> str:
        keep = [m for m in names if m not in drop]
        return " / ".join(f"{sub_tau(audit, k, lambda c: c['name'] in keep, lambda c: -longer[c['name']]):.2f}"
                          for k in biws_keys(audit))

    def vs3000(audit: Json, drop: Sequence[str] = ()) -> str:
        keep = [m for m in names if m not in drop]
        return " / ".join(f"{sub_tau(audit, k, lambda c: c['name'] in keep):.2f}" for k in biws_keys(audit))

    budgets = two["kendall_tau"]["audit-24-pop4k"]["audit_reference_vs_longer"]
    ref_vs = six["kendall_tau"]["audit-24-pop4k-ref3000"]["audit_reference_vs_longer"]
    rest = [m for m in names if m != worst]
    ref_vs_drop = kendall([-loss_3000[m] for m in rest], [-longer[m] for m in rest])
    return "\n\n".join([
        "## Reference budget — is the reference trained long enough?",
        "### Every supernet against the 3,000-step reference",
        code(two["command"]),
        f"The stored BIWS scores of each audit, re-scored against {two['reference_steps']:,} scratch steps × "
        f"{len(two['seeds'])} seeds (noise ceiling {two['noise_ceiling_tau']:.2f}). Point estimates on one "
        "candidate set: differences under about 0.1 are noise.",
        table(["supernet (audit file)", f"Kendall τ, BIWS k = {ks(own)}"], [r[1] for r in rows]),
        f"Highest: {rows[0][1][0]}; lowest: {rows[-1][1][0]}. Population sampling is what ranks well; per-branch "
        "modules and the uses_v split neither help nor hurt measurably; fair sampling, which equalises exposure, "
        "hurts, and uniform sampling of the whole space ranks low. " + source("reference_budget-2seeds"),
        "### Why the reference is 3,000 steps",
        f"At {old['reference']['steps']:,} steps the two reference seeds agreed at "
        f"τ {old['reference']['noise_ceiling_tau']['value']:.2f}, but training on to {two['reference_steps']:,} "
        f"steps still reordered the candidates: τ {budgets:.2f} "
        f"between the budgets. At {two['reference_steps']:,} steps the seeds agree at "
        f"{two['noise_ceiling_tau']:.2f}. (A first, one-seed look: `{one['command'].split()[2]} … "
        f"--reference-steps {one['reference_steps']}`, τ "
        f"{one['kendall_tau']['audit-24-pop4k']['audit_reference_vs_longer']:.2f} between the budgets: "
        + cite("reference_budget") + ".) An earlier audit at 500 reference steps is in the git history "
        "(commit f177606). " + source("reference_budget-2seeds"),
        "### Is 3,000 steps itself enough? Nearly",
        code(six["command"] + "   # and a second process with --backwards"),
        f"{len(names)} of the {own['scored']} ({kinds_of(six['candidates'])}) trained "
        f"{six['reference_steps']:,} steps, seed {six['seeds'][0]}:",
        table(["Kendall τ on these " + str(len(names)), f"all {len(names)}", f"without {worst}"], [
            [f"the {six['audit_reference_steps']:,}-step reference vs {six['reference_steps']:,}",
             f"{ref_vs:.2f}", f"{ref_vs_drop:.2f}"],
            [f"BIWS k = {ks(own)} (own population) vs {six['reference_steps']:,}", vs6000(own),
             vs6000(own, [worst])],
            [f"BIWS k = {ks(held)} (held-out population) vs {six['reference_steps']:,}", vs6000(held),
             vs6000(held, [worst])],
            [f"BIWS k = {ks(own)} (own population) vs the {six['audit_reference_steps']:,}-step reference",
             vs3000(own), vs3000(own, [worst])],
        ]),
        f"The one big move is {worst}, which ended "
        f"*{'worse' if longer[worst] > loss_3000[worst] else 'better'}* after {six['reference_steps']:,} steps "
        f"(loss {longer[worst]:.2f} against {loss_3000[worst]:.2f} at {six['audit_reference_steps']:,}); why was not "
        f"looked into. One seed and {len(names)} candidates: a check of the budget, not a second audit. "
        + source("reference_budget-6000-subset-b"),
    ])


def kinds_of(candidates: Sequence[Json]) -> str:
    names = {"bert": "vanilla BERT", "figure7": "Figure 7", "neighbour": "Figure-7 mutants",
             "random": "sampled genotypes"}
    counts: dict[str, int] = {}
    for c in candidates:
        counts[c["kind"]] = counts.get(c["kind"], 0) + 1
    return ", ".join(f"{n} {names.get(k, k)}" for k, n in counts.items())


def audit_history() -> str:
    names = ["audit-24-pop4k", "audit-24-uniform4k", "audit-24-pop-branch4k", "audit-24-fair4k",
             "audit-24-pop10k", "audit-24-fair10k", "audit-24-pop2k", "audit-24-fairhalf4k", "audit-24-pop-usesv4k"]
    audits = [load(n) for n in names]
    first = audits[0]
    a48 = load("audit-48-pop4k")
    e48 = a48["estimators"]
    now = load("audit-24-pop4k-ref3000")
    fam = [-c["reference"]["score"] for c in now["candidates"] if c["kind"] in FAMILY]
    rest = [-c["reference"]["score"] for c in now["candidates"] if c["kind"] not in FAMILY]
    ids24 = {c["id"] for c in first["candidates"]}
    return "\n\n".join([
        "## Superseded: the audit at a 1,500-step reference",
        "> **Superseded** by the 3,000-step reference above. Kept because it shows how a short reference "
        "misleads an audit: what looked like a supernet bias towards the heavily trained Figure-7 family was "
        "mostly the supernet seeing early what the short reference had not yet reached.",
        code("\n".join(load(n)["command"] for n in names)),
        f"Same {first['scored']} candidates and supernets, reference {first['reference']['steps']:,} scratch steps "
        f"× {len(first['reference']['seeds'])} seeds; the last two columns are those of the first audit (one "
        f"reference run {first['reference']['seconds_per_candidate']:.0f} s in that process). Generated with "
        "`benchmarks/audit_table.py`:",
        markdown(audits, [supernet_label(a) for a in audits]),
        png("audit-24-pop4k", "ranking audit at a 1,500-step reference, population supernet"),
        subgroup_table([(supernet_label(a), a) for a in audits]),
        f"Against this reference the goal τ ≥ 0.6 was not met: the best BIWS τ was "
        f"{max(max(taus(a, 'biws')) for a in audits):.2f} against a noise ceiling of "
        f"{first['reference']['noise_ceiling_tau']['value']:.2f}. Across these supernets BIWS ranked the sampled "
        "genotypes and BERT at " + span(sub_tau(a, k, in_kinds(*SAMPLED)) for a in audits for k in biws_keys(a))
        + " and the Figure-7 family at " + span(sub_tau(a, k, in_kinds(*FAMILY)) for a in audits
                                               for k in biws_keys(a))
        + ". That was read as a supernet bias against the family's near-equals; at "
        f"{now['reference']['steps']:,} steps (above) the family's reference losses are "
        + ("all below" if max(fam) < min(rest) else "not all below") + " the others'.",
        f"**{a48['scored']} candidates** (`{a48['command']}`): BIWS τ "
        + " / ".join(f"{tau(a48, k):.2f}" for k in biws_keys(a48)) + f" at k = {ks(a48)} (k = "
        f"{e48[biws_keys(a48)[-1]]['k']}: {interval(e48[biws_keys(a48)[-1]]['kendall_tau'])}), noise ceiling "
        f"{interval(a48['reference']['noise_ceiling_tau'])}, matched scratch {span(taus(a48, 'scratch'))}, "
        f"parameters {signed(tau(a48, 'params'))}, hurdles {span(taus(a48, 'hurdle'))}; the first "
        f"{first['scored']} alone " + span(sub_tau(a48, k, lambda c: c["id"] in ids24) for k in biws_keys(a48))
        + ", the new ones " + span(sub_tau(a48, k, lambda c: c["id"] not in ids24) for k in biws_keys(a48))
        + ". " + source("audit-48-pop4k"),
        "Sources: " + "; ".join(cite(n) for n in names) + ".",
    ])


def contrast(finals: dict[str, list[float]], a: str, b: str) -> str:
    """`a` − `b` of the mean final best: the difference, its Welch 95% interval, the Welch t-test p and an exact
    two-sided permutation p (every split of the pooled seeds)."""
    x, y = np.asarray(finals[a]), np.asarray(finals[b])
    welch = stats.ttest_ind(x, y, equal_var=False)
    low, high = welch.confidence_interval(0.95)
    perm = stats.permutation_test((x, y), lambda u, v: np.mean(u) - np.mean(v), permutation_type="independent",
                                  n_resamples=np.inf, alternative="two-sided")
    return (f"{a} − {b} {x.mean() - y.mean():+.3f} [{low:+.3f}, {high:+.3f}], Welch p {welch.pvalue:.2f}, "
            f"permutation p {perm.pvalue:.2f}")


def p_value(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


def search_op() -> str:
    """The pre-registered benchmark of the priority that steers every decision (`bench_search`)."""
    if not (RESULTS / "search_op_vs_baselines.json").exists():
        return ""
    d = load("search_op_vs_baselines")
    st, runs = d["settings"], d["runs"]
    rows = []
    for strategy in d["strategies"]:
        mine = [r for r in runs.values() if r["strategy"] == strategy]
        finals, rescored = [r["final_best"] for r in mine], [r["rescored"] for r in mine]
        diverted = statistics.mean(sum(r["diverted"].values()) for r in mine)
        rows.append([strategy, len(mine), f"{statistics.mean(finals):+.4f}", f"{statistics.mean(rescored):+.4f}",
                     f"{statistics.stdev(rescored):.4f}" if len(rescored) > 1 else "—", f"{diverted:.1f}"])
    contrast_rows = []
    for name, c in d["comparisons"].items():
        r = c["rescored"]
        ci = r["bootstrap_95"]
        contrast_rows.append([name.replace("-", " − "), r["n"], f"{r['mean']:+.4f}",
                              "—" if ci is None else f"[{ci[0]:+.4f}, {ci[1]:+.4f}]",
                              "—" if r["d_z"] is None or math.isnan(r["d_z"]) else f"{r['d_z']:+.2f}",
                              p_value(r["wilcoxon_p"]), p_value(r["permutation_p"]),
                              "—" if r["seeds_for_80_power"] is None else r["seeds_for_80_power"]])
    reach, goal = d["reach"], d["goal"]
    population = st["population"]
    gains = {strategy: statistics.mean(r["curve"][-1] - r["curve"][population - 1] for r in runs.values()
                                       if r["strategy"] == strategy) for strategy in d["strategies"]}
    spread = statistics.mean(statistics.stdev(r["rescored"] for r in runs.values() if r["seed"] == seed)
                             for seed in d["seeds"]) if len(d["strategies"]) > 1 else float("nan")
    command = (f"python -m benchmarks.bench_search --fitness {st['fitness']} --seeds {len(d['seeds'])} "
               f"--evaluations {st['evaluations']} --supernet-steps {st['supernet_steps']} --population "
               f"{st['population']} --tournament {st['tournament']}")
    return "\n\n".join([
        "## Search — OP-NAS (priority on every decision) vs regularized evolution vs random search",
        code(command),
        "Pre-registered in `benchmarks/bench_search.py`'s docstring before the run: hypothesis, seeds, primary "
        "test (one-sided Wilcoxon signed-rank, paired by seed, of the final best re-scored on held-out blocks "
        "the fitness never saw), goal. Each seed trains its own supernet, shared by the three strategies "
        f"(common random numbers); `{st['config']}`, reward `{st['reward']}`, c {st['priority_c']}, "
        f"temperature {st['temperature']}, adapt_steps 0, BIWS k = 0.",
        table(["strategy", "runs", "final best (fitness)", "re-scored", "SD re-scored",
               "draws the priority changed / run"], rows),
        table(["contrast (re-scored)", "seeds", "mean", "bootstrap 95%", "d_z", "Wilcoxon p (one-sided)",
               "permutation p", "seeds for 80% power"], contrast_rows),
        f"Evaluations for OP to reach the same seed's evolution final best: median "
        f"{reach['median_share']:.0%} of the budget (permutation p {p_value(reach['permutation_p'])}). Goal "
        f"(≤ 60% and p < 0.05 against both baselines): **{'met' if goal['met'] else 'not met'}** "
        f"(reach ≤ 60%: {goal['reach_share_at_most_0.6']}, beats evolution: "
        f"{goal['beats_evolution_p_below_0.05']}, beats random: {goal['beats_random_p_below_0.05']}). "
        f"What limits it: after the initial population of {population}, the best fitness rose on average by only "
        + ", ".join(f"{gain:.4f} ({strategy})" for strategy, gain in gains.items())
        + f" nats over the remaining {st['evaluations'] - population} evaluations, and the three strategies' "
        f"re-scored final bests within one seed differ by {spread:.4f} nats (mean SD): with a "
        f"{st['supernet_steps']}-step supernet the fitness separates little, so this budget cannot tell the "
        "strategies apart; the fitness itself is the "
        "subject of the audit work still open.",
        png("search_op_vs_baselines", "OP vs evolution vs random search, best-so-far per seed"),
        source("search_op_vs_baselines"),
    ])


def search() -> str:
    parts = ["## Search — earlier benchmark (the priority steered only the op choice)"]
    commands = {
        "search_evaluate": "python -m benchmarks.bench_search --fitness evaluate --config {config} "
                           "--supernet runs/a1500-supernet-pop10k --evaluations {evaluations} "
                           "--population {population} --tournament {tournament}",
        "search_synthetic": "python -m benchmarks.bench_search --evaluations {evaluations} "
                            "--population {population} --tournament {tournament}",
    }
    for name, title in (("search_evaluate", "BIWS fitness"), ("search_synthetic", "synthetic fitness")):
        d = load(name)
        rows = []
        for strategy, finals in d["final_best"].items():
            over = d["overhead_ms"][strategy]
            rows.append([strategy, f"{statistics.mean(finals):+.3f} ± {statistics.pstdev(finals):.3f}",
                         f"{d['seconds'][strategy]:.1f}", f"{over['in_memory_ms']:.2f}",
                         f"{over['with_state_ms']:.2f}"])
        reached = d["op_reaches_evolution_final_at"]
        hit = sorted(r for r in reached if r is not None)
        share = d["op_median_share"]
        worst = max(o["with_state_ms"] for o in d["overhead_ms"].values())
        goal_share = ("not met: op did not reach it in most seeds" if share is None else
                      f"{'met' if share <= GOAL_OP_SHARE else 'not met'} ({share:.0%} of the budget)")
        contrasts = "; ".join(contrast(d["final_best"], a, b) for a, b in (("op", "evolution"), ("op", "random"))
                              if a in d["final_best"] and b in d["final_best"])
        parts += [
            f"### {title}",
            code(commands[name].format(**d)),
            f"{d['seeds']} seeds, {d['evaluations']} evaluations, population {d['population']}, tournament "
            f"{d['tournament']}" + (f", `{d['config']}`" if d["config"] else "") + ". Final best fitness "
            "(mean ± SD over seeds), seconds for all seeds, loop overhead per candidate:",
            table(["strategy", "final best", "seconds", "overhead in memory (ms)",
                   "overhead with state writes (ms)"], rows),
            f"op reached evolution's mean final best in {len(hit)} of {len(reached)} seeds"
            + (f", after {', '.join(map(str, hit))} evaluations" if hit else "")
            + f"; the goal \"within {GOAL_OP_SHARE:.0%} of the budget, median\" is {goal_share}. Largest "
            f"overhead with state writes {worst:.2f} ms: the {GOAL_OVERHEAD_MS:.0f} ms goal is "
            f"{'met' if worst <= GOAL_OVERHEAD_MS else 'not met'}. Differences of the final best, each with its "
            f"95% interval (Welch) and tests: {contrasts}. Few seeds: a small-sample result on one fitness.",
            png(name, f"OP vs regularized evolution vs random search, {title}"),
            source(name),
        ]
    return "\n\n".join(parts)


def compiler() -> str:
    d = load("compiler")
    lat = [[x["genotype"], f"{x['parse_ms']:.2f}", f"{x['validate_canonical_ms']:.2f}", f"{x['compile_ms']:.1f}",
            f"{x['model_ms']:.0f}"] for x in d["latency"]]
    thr = [[x["model"], f"{x['median_ms']:.1f}", f"{x['tokens_per_s']:,.0f}", f"**{x['ratio_vs_bert']:.3f}**"]
           for x in d["throughput"]]
    mem = {x["model"]: x["peak_step_mib"] for x in d["peak_memory"]}
    return "\n\n".join([
        "## Compiler",
        code("python -m benchmarks.bench_compiler" + (" --compile" if d["settings"]["compile"] else "")),
        "Latency per genotype (milliseconds; compile = IR → fx attention cores → layer modules, cold):",
        table(["genotype", "parse", "validate + canonicalise", "compile", "build model"], lat),
        "Forward + backward against `transformers.BertModel` with the same weights, interleaved (model and batch "
        "sizes: the script's docstring):",
        table(["model", "median ms", "tokens / s", "ratio vs BERT"], thr),
        f"Peak memory of a training step: BERT {mem['bert']:.1f} MiB, ours {mem['abz']:.1f} MiB, ratio "
        f"**{mem['ratio abz/bert']:.3f}**. Single runs on a shared machine: ratios within a few percent are noise. "
        + source("compiler"),
    ])


def pretrain_throughput() -> str:
    rows = []
    commands = []
    for name in ("pretrain_throughput_tiny", "pretrain_throughput_tiny_rounds4", "pretrain_throughput_small"):
        d = load(name)
        tps = d["tokens_per_s"]
        sparse = tps.get("genotype_sparse", tps.get("genotype"))
        like = d.get("ratio_like_for_like")
        as_used = d.get("ratio_as_used", d.get("ratio_genotype_over_bert"))
        rows.append([f"`{name}`", d["config"], d["machine"]["threads"], f"{d['params']['bert']:,}",
                     d["rounds"], d["steps_per_chunk"],
                     f"{tps['genotype_dense']:,.0f}" if "genotype_dense" in tps else "not measured",
                     f"{sparse:,.0f}", f"{tps['bert']:,.0f}",
                     f"**{like:.3f}**" if like is not None else "not measured", f"**{as_used:.3f}**"])
        prefix = "OMP_NUM_THREADS=1 " if d["machine"]["threads"] == 1 else ""
        commands.append(f"{prefix}python -m benchmarks.bench_pretrain_throughput --config {d['config']} "
                        f"--rounds {d['rounds']} --steps {d['steps_per_chunk']}   # -> {name}.json")
    return "\n\n".join([
        "## Pre-training throughput",
        code("\n".join(commands)),
        "MLM pre-training tokens/s through DeepSpeed, the vanilla genotype against `BertForMaskedLM`, same data, "
        "masks, engine and optimizer, chunks in mirrored rotation. **Like for like**: our dense MLM head against "
        "BERT's (what the compiler costs). **As used**: our sparse MLM head (logits only at masked positions), as "
        "`abz pretrain` runs it. `_rounds4` was renamed by hand; the small-size run predates the dense/sparse "
        "split, so it has the as-used ratio only.",
        table(["result", "config", "threads", "parameters", "rounds", "steps / chunk", "ours dense tok/s",
               "ours sparse tok/s", "BERT tok/s", "like for like", "as used"], rows),
        "One thread on a loaded machine: the two tiny runs differ by more than the effect; read the ratios as "
        "\"about equal\" (like for like) and \"faster\" (as used). "
        + source("pretrain_throughput_tiny", "pretrain_throughput_tiny_rounds4", "pretrain_throughput_small"),
    ])


def short_run() -> str:
    d = load("short_run")
    rows = []
    for name, r in d["results"].items():
        p, g = r["pretrain"], r["glue"]
        rows.append([name, f"{p['num_parameters']:,}", f"{p['final_loss']:.3f} / {p['eval_loss']:.3f}",
                     f"{g['RTE']['accuracy']:.3f}", f"{g['MRPC']['f1']:.3f} / {g['MRPC']['accuracy']:.3f}",
                     f"{g['CoLA']['matthews_corrcoef']:.3f}",
                     f"{g['STS-B']['pearson']:.3f} / {g['STS-B']['spearman']:.3f}", f"{g['SST-2']['accuracy']:.3f}"])
    first = next(iter(d["results"].values()))["pretrain"]
    corpora = " + ".join(Path(c).name for c in d["corpus"])
    return "\n\n".join([
        "## Short run — pre-training and GLUE at tiny size",
        code(f"python -m benchmarks.bench_short_run --config {d['config']} --steps {d['steps']} "
             f"--finetune-steps {d['finetune_steps']} --train-examples {d['train_examples']}"),
        f"`{d['config']}`, {d['steps']:,} MLM steps of {first['train_batch_size']}×{first['block_length']} tokens on "
        f"{corpora} (vocabulary {first['vocab_size']:,}), then {d['finetune_steps']} fine-tuning steps on at most "
        f"{d['train_examples']:,} training examples per task, scored on the full dev sets:",
        table(["genotype", "params", "MLM loss (train / held-out)", "RTE acc", "MRPC F1 / acc", "CoLA MCC",
               "STS-B Pearson / Spearman", "SST-2 acc"], rows),
        "At this scale GLUE scores sit near chance; the run shows the pipeline end to end, nothing more.",
        png("short_run_loss", "MLM loss curves of the short run"),
        source("short_run"),
    ])


def startup() -> str:
    d = load("startup")
    rows = []
    for command, versions in d["commands"].items():
        for version in ("base", "head"):
            v = versions[version]
            rows.append([f"`abz {command}`", f"{d[version]} ({version})", f"{v['median_cpu_s']:.2f}",
                         f"{v['median_s']:.2f}", f"{v['min_s']:.2f}", len(v["runs"]),
                         "yes" if v["deepspeed_warning"] else "no"])
    runs = {c: len(v["head"]["runs"]) for c, v in d["commands"].items()}
    return "\n\n".join([
        "## Start-up",
        code(f"python -m benchmarks.bench_startup --runs {runs['check']} --compile-runs {runs.get('compile', 0)}"),
        f"Cold start of `abz` on `{d['genotype']}`, commit {d['head']} against {d['base']} (before the light "
        f"language); {d['method']}. Interpreter floor {d['interpreter_floor_s']:.2f} s; 1-minute load average "
        f"{d['load_average_1min']:.1f} on {d['machine']['threads']} threads, so wall times are inflated: CPU "
        "seconds are the steadier figure. No run on an unloaded machine is recorded.",
        table(["command", "version", "median CPU s", "median wall s", "min wall s", "runs", "DeepSpeed warning"],
              rows),
        source("startup"),
    ])


def supernet_switch() -> str:
    d = load("supernet_switch")
    return "\n\n".join([
        "## Supernet switch",
        code("OMP_NUM_THREADS=1 python -m benchmarks.bench_supernet_switch"
             + ("" if d["candidates"] == 30 else f" --candidates {d['candidates']}")),
        f"Switching the active candidate of a supernet among {d['candidates']} sampled genotypes: `activate` "
        f"median **{d['median_warm_ms']:.1f} ms** with the compiled-core cache warm, {d['median_cold_ms']:.1f} ms "
        f"cold ({d['cold_over_warm']:.1f}×); `extract` of a static model {d['median_extract_ms']:.0f} ms. "
        + source("supernet_switch"),
    ])


def index() -> str:
    rows = []
    for path in sorted(RESULTS.glob("*.json")):
        d = json.loads(path.read_text(encoding="utf-8"))
        m = d.get("machine", {})
        rows.append([f"`{path.name}`", d.get("benchmark", ""), d.get("when", "")[:16].replace("T", " "),
                     commit_of(d), m.get("threads", ""), m.get("device", "")])
    return "\n\n".join(["## All result files", table(["file", "benchmark", "when", "commit", "threads", "device"],
                                                      rows)])


def end_to_end() -> str:
    """The end-to-end experiment (issue #16 §4) as far as it has run: each search's best, the arms chosen, the
    budget check; the retrain's figures once `end_to_end.json` exists."""
    folder = RESULTS / "end-to-end"
    searches = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((folder / "searches").glob("*.json"))]
    if not searches:
        return ""
    rows = []
    for d in searches:
        best = min((t for t in d["top"] if t["rescored_loss"] is not None), key=lambda t: t["rescored_loss"])
        rows.append([d["name"], d["seed"], d["candidates"], f"{d['top'][0]['fitness']:.4f}",
                     f"{best['rescored_loss']:.4f}", f"#{best['index']}", commit_of(d)])
    final = RESULTS / "end_to_end.json"
    parts = ["## End-to-end experiment" + ("" if final.is_file() else " (in progress)"),
             "Searches from scratch on real text (pre-registered in `benchmarks/bench_end_to_end.py`), each one's "
             "top 8 by fitness re-scored on held-out blocks 512–1023, which no fitness used; the re-scored losses "
             "of different search seeds come from different supernets (seed 0, 1, 2), so they compare within a "
             "seed.", code("python -m benchmarks.bench_end_to_end"),
             table(["search", "seed", "candidates", "best fitness", "best re-scored loss", "that candidate",
                    "commit"], rows)]
    arms_path = folder / "arms.json"
    if arms_path.is_file():
        arms = json.loads(arms_path.read_text(encoding="utf-8"))
        parts.append(table(["arm", "from search", "candidate", "re-scored loss"],
                           [[a["name"], a["search"], f"#{a['index']}", f"{a['rescored_loss']:.4f}"]
                            for a in arms["arms"]]))
    budget_path = folder / "budget.json"
    if budget_path.is_file():
        budget = json.loads(budget_path.read_text(encoding="utf-8"))
        same = len({tuple(order) for order in budget["orders"].values()}) == 1
        parts.append(f"Budget check done: the order of the arms by held-out loss is "
                     f"{'the same' if same else 'not the same'} at {' and '.join(budget['orders'])} steps, so the "
                     f"main retrain runs at **{budget['chosen_steps']} steps** (pre-registered rule). Its 5-seed "
                     "retrain follows.")
    else:
        parts.append("Budget check (every arm once at 2,000 and 4,000 steps) and the 5-seed retrain: not finished; "
                     "per-run files are committed under `benchmarks/results/end-to-end/` as they come.")
    if final.is_file():
        parts.append(end_to_end_figures(json.loads(final.read_text(encoding="utf-8"))))
    else:
        parts.append(retrain_progress(folder / "retrain"))
    if (folder / "plots" / "scores.png").is_file():
        parts.append("Training loss per arm (mean over pre-training seeds) and each endpoint per arm with 95% "
                     "intervals (held-out loss; the GLUE tasks and their average once the retrain has finished; "
                     "`python -m benchmarks.plot_end_to_end`, from the committed per-run files):\n\n"
                     + png("end-to-end/plots/loss_curves", "end-to-end training loss") + " "
                     + png("end-to-end/plots/scores", "end-to-end scores"))
    edge = RESULTS / "end-to-end" / "lr-edge.json"
    if edge.is_file():
        parts.append(lr_edge(json.loads(edge.read_text(encoding="utf-8"))))
    runs = budget_runs(folder)
    if runs:
        budgets = sorted(runs)
        arms = sorted({arm for losses in runs.values() for arm in losses},
                      key=lambda arm: runs[budgets[0]].get(arm, math.inf))  # by the shortest budget's loss
        rows = [[arm, *(f"{runs[b][arm]:.4f}" if arm in runs[b] else "running / to come" for b in budgets)]
                for arm in arms]
        parts.append("Budget-check runs (seed 0, lr 1e-3, one run each: no interval; held-out MLM loss on blocks "
                     "1024–2047 of the document-disjoint text):")
        parts.append(table(["arm", *(f"{b} steps" for b in budgets)], rows))
    return "\n\n".join(parts)


def end_to_end_figures(data: Json) -> str:
    """The finished retrain: per arm mean [95% interval] over pre-training seeds, the paired contrasts (Holm per
    endpoint), found-op − found-random, and the pre-registered goal's verdict."""
    from autobert_zero.train.retrain.report import arm_table, contrast_table
    from benchmarks.bench_end_to_end import goal

    retrain = data["retrain"]
    verdict = goal(retrain["analysis"])

    def shown(entry: Json | None) -> str:
        if not entry or entry["low"] is None:
            return "not measured"
        return f"{entry['mean']:+.4f} [{entry['low']:+.4f}, {entry['high']:+.4f}], Holm p {_p(entry['p_holm'])}"

    op_random = data["found_op_minus_found_random"]
    return "\n\n".join([
        f"Retrain at {data['budget_steps']} steps, {len(retrain['seeds'])} pre-training seeds per arm, figures as "
        f"mean [95% t interval] ({commit_of(data)}):",
        "\n".join(arm_table(retrain)), "Paired by pre-training seed (found − baseline):",
        "\n".join(contrast_table(retrain)),
        "found-op − found-random (paired t, not Holm-corrected): " + ", ".join(
            f"{endpoint} {e['mean']:+.4f} [{_signed(e['low'])}, {_signed(e['high'])}]"
            for endpoint, e in op_random.items()),
        f"**Goal (found-op beats BERT on held-out loss and on the GLUE average, intervals excluding 0): "
        f"{'met' if verdict['met'] else 'not met'}.** Held-out loss: {shown(verdict['heldout_loss'])} "
        f"({'met' if verdict['heldout_met'] else 'not met'}); GLUE average: {shown(verdict['glue_average'])} "
        f"({'met' if verdict['glue_met'] else 'not met'})."])


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.4f}"


def _p(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}"


def lr_edge(data: Json) -> str:
    """The exploratory check beyond the retrain's lr grid (`benchmarks/bench_lr_edge.py`, hypotheses in its
    docstring): every arm's sweep score at the grid's lrs and above, and which lr is best."""
    lrs = sorted({lr for scores in data["scores"].values() for lr in scores}, key=float)
    rows = [[arm, *(f"{scores[lr]:.3f}" if scores.get(lr) is not None else "–" for lr in lrs), f"{data['best'][arm]:g}"]
            for arm, scores in data["scores"].items()]
    return "\n\n".join([
        "Exploratory, not pre-registered (`python -m benchmarks.bench_lr_edge`, hypotheses in its docstring): the "
        f"same {data['sweep_steps']}-step sweep runs above the grid, since every arm chose its top "
        f"({commit_of(data)}):",
        table(["arm", *(f"lr {lr}" for lr in lrs), "best"], rows)])


def retrain_progress(folder: Path) -> str:
    """The main retrain while it runs: each arm's lr sweep (and the lr it chose, by the retrain's own rule) and
    its finished pre-training seeds with their held-out losses; interim figures, no test until every seed is in."""
    from autobert_zero.train.retrain.runs import lr_tag, pick_lr, sweep_score
    from benchmarks.bench_end_to_end import heldout_by_seed

    path = folder / "retrain.json"
    if not path.is_file():
        return ""
    plan = json.loads(path.read_text(encoding="utf-8"))
    lrs, seeds = plan["settings"]["lrs"], plan["settings"]["seeds"]
    sweep_rows, seed_rows = [], []
    heldout: dict[str, dict[int, dict[str, float]]] = {}
    for arm in (a["name"] for a in plan["arms"]):
        sweeps = {lr: folder / "runs" / arm / f"sweep-{lr_tag(lr)}" for lr in lrs}
        finished = {lr: sweep_score(run) for lr, run in sweeps.items() if (run / "summary.json").is_file()}
        chosen = f"{pick_lr(finished):g}" if len(finished) == len(lrs) else "to come"
        sweep_rows.append([arm, *(f"{v:.3f}" if (v := finished.get(lr)) is not None else "–" for lr in lrs), chosen])
        heldout[arm] = heldout_by_seed(folder, arm)
        losses = [float(heldout[arm][seed]["heldout_loss"]) for seed in sorted(heldout[arm])]
        mean = f"{statistics.fmean(losses):.4f}" if losses else "–"
        seed_rows.append([arm, f"{len(losses)} / {seeds}", mean, ", ".join(f"{v:.3f}" for v in losses) or "–"])
    edge = all(row[-1] == f"{max(lrs):g}" for row in sweep_rows)
    return "\n\n".join([
        f"Retrain (2,000 steps): learning-rate sweep, {plan['settings']['sweep_steps']} steps per lr at seed 0, "
        "scored by the mean training loss of each run's last fifth (the lower the better; '–': not run yet):",
        table(["arm", *(f"lr {lr:g}" for lr in lrs), "chosen"], sweep_rows)
        + ("\n\nEvery arm chose the grid's largest lr, so each arm's best lr may lie above the grid (the grid was "
           "pre-registered and stays; the exploratory lr-edge check below tries 4e-3 and 8e-3)." if edge else ""),
        "Pre-training seeds finished so far, held-out MLM loss on the document-disjoint blocks 1024–2047 "
        "(**interim** until every seed is in; nothing is decided on a part):",
        table(["arm", "seeds done", "mean so far", "per seed"], seed_rows),
        *primary_endpoint(plan["arms"], heldout, seeds),
        *glue_progress(folder, plan)])


def glue_progress(folder: Path, plan: Json) -> list[str]:
    """GLUE dev scores of the fine-tunes finished so far: per task and arm, the mean over pre-training seeds
    whose every fine-tuning seed is done (each seed's score is the mean over its fine-tuning seeds, as the
    retrain scores it). Empty before the first. Interim: the paired tests come with the retrain's results."""
    tasks, fine_seeds = plan["settings"].get("glue_tasks", []), plan["settings"].get("finetune_seeds", 1)
    cells: dict[str, list[str]] = {}
    any_done = False
    for arm in (a["name"] for a in plan["arms"]):
        for task in tasks:
            per_seed = []
            for run in sorted((folder / "runs" / arm).glob("seed*")):
                scores = [json.loads(p.read_text(encoding="utf-8"))["score"]
                          for p in sorted(run.glob(f"glue/{task}-ft*/eval.json"))]
                if len(scores) == fine_seeds:
                    per_seed.append(statistics.fmean(scores))
            any_done = any_done or bool(per_seed)
            cells.setdefault(arm, []).append(f"{statistics.fmean(per_seed):.4f} (n={len(per_seed)})" if per_seed
                                             else "running / to come")
    if not any_done:
        return []
    return [f"GLUE dev so far (mean over pre-training seeds of the mean over {fine_seeds} fine-tuning seeds; "
            "**interim**, the paired tests and the GLUE average come with the retrain's results):",
            table(["arm", *tasks], [[arm, *row] for arm, row in cells.items()])]


def primary_endpoint(arms: Sequence[Json], heldout: dict[str, dict[int, Json]], seeds: int) -> list[str]:
    """Once every arm has all its pre-training seeds: the pre-registered paired contrasts on the primary endpoint
    (held-out loss; Holm over the found × baseline pairs, as the retrain's own analysis), found-op − found-random,
    and the held-out half of the goal. Empty before that (GLUE, the secondary endpoint, comes later)."""
    from autobert_zero.train.retrain.report import analyse, contrast_table, number, paired
    from benchmarks.bench_end_to_end import goal

    if any(len(heldout.get(a["name"], {})) < seeds for a in arms):
        return []
    order = sorted(heldout[arms[0]["name"]])
    analysis = analyse(arms, heldout, {}, order)
    values = {name: by["heldout_loss"]["values"] for name, by in analysis["arms"].items()}
    lines = ["**Primary endpoint, final** (all pre-training seeds in; GLUE, the secondary endpoint, still running): "
             "held-out loss per arm, mean [95% t interval]: " + "; ".join(
                 f"{name} {by['heldout_loss']['mean']:.4f} [{number(by['heldout_loss']['low'])}, "
                 f"{number(by['heldout_loss']['high'])}]" for name, by in analysis["arms"].items()),
             "\n".join(contrast_table({"analysis": analysis}))]
    if "found-op" in values and "found-random" in values:
        d = paired(values["found-op"], values["found-random"])
        lines.append(f"found-op − found-random (paired t, not Holm-corrected): {d['mean']:+.4f} "
                     f"[{_signed(d['low'])}, {_signed(d['high'])}], p {_p(d['p'])}")
        verdict = goal(analysis)
        lines.append(f"Held-out half of the goal (found-op − bert interval below 0): "
                     f"{'met' if verdict['heldout_met'] else 'not met'}; the GLUE half is not measured yet.")
    return lines


def budget_runs(folder: Path) -> dict[int, dict[str, float]]:
    """{steps: {arm: held-out loss}} of the budget check's finished runs (`budget-<steps>/runs/<arm>/seed0`)."""
    out: dict[int, dict[str, float]] = {}
    for path in sorted(folder.glob("budget-*/runs/*/seed0/heldout.json")):
        steps = int(path.parts[-5].removeprefix("budget-"))
        out.setdefault(steps, {})[path.parts[-3]] = float(json.loads(path.read_text(encoding="utf-8"))["heldout_loss"])
    return out


AUDIT_SEARCH = "audit-e2e"
"""The audit on the end-to-end searches' own candidates (issue #15 §1–§2; pre-registered beside its cache)."""
GOAL_COLUMNS = (("kendall_tau", "τ [95% CI]"), ("top_half_tau", "top-half τ"), ("top_quarter_tau", "top-¼ τ"),
                ("sibling_tau", "sibling τ"), ("precision_at_5", "precision@5"), ("regret_at_1", "regret@1 (nats)"),
                ("regret_at_5", "regret@5 (nats)"))


def audit_search() -> str:
    """The audit on the searches' own distribution: every estimator's figures with their intervals, the goal of
    #15 §2 (`goal.fitness_goal`), the best candidate's paired differences, and the reference's convergence."""
    from autobert_zero.train.audit.goal import GOAL_FIGURES, fitness_goal, nearest, paired_interval
    from autobert_zero.train.audit.plot import goal_verdict

    head = "## Ranking audit on the search's own candidates (issue #15)"
    plan = "`benchmarks/results/audit-e2e/PREREGISTRATION.md`"
    if not (RESULTS / f"{AUDIT_SEARCH}.json").is_file():
        return "\n\n".join([head, f"Pre-registered in {plan}; running (its caches are committed beside it as "
                                    "they fill). No figure yet."])
    a = load(AUDIT_SEARCH)
    est, ref = a["estimators"], a["reference"]
    goal = a.get("fitness_goal") or fitness_goal(a)

    def cell(key: str, figure: Json | None) -> str:
        if key == "kendall_tau":
            return interval(figure)
        value = (figure or {}).get("value")
        text = "—" if value is None else f"{value:.3f}" if key.startswith("regret") else f"{value:+.2f}"
        return text + ("?" if (figure or {}).get("unresolvable") else "")

    def cells(figures: Json) -> list[str]:
        return [cell(key, figures.get(key)) for key, _ in GOAL_COLUMNS]

    rows = [[name, *cells(e.get("figures", {})), f"{e['seconds_per_candidate']:.1f}",
             "" if e.get("cost", {}).get("amortised_seconds_over_search") is None
             else f"{e['cost']['amortised_seconds_over_search']:.1f}"] for name, e in est.items()]
    rows.append(["noise ceiling (leave-one-out)", *cells(ref["noise_ceiling"]),
                 f"{ref['seconds_per_candidate']:.0f} (one seed)", ""])
    checked = goal["estimators"]
    best = nearest(goal)
    pairs = a["paired_differences"]

    def difference(x: str, y: str, figure: str) -> str:
        return interval(paired_interval(pairs, x, y, figure))

    parts = [head, code(f"OMP_NUM_THREADS=1 {a['command']}"),
             f"Pre-registered in {plan} (hypotheses, decision rule, notes written before any figure). "
             f"{a['scored']} candidates drawn from the histories of two end-to-end searches "
             f"({', '.join(Path(f).name for f in a['candidate_source']['from_search'])}): a third from the top "
             f"decile, a quarter as sibling groups, the rest uniform; {a['supernets']} supernets "
             f"(each estimator run on each; the bootstrap resamples candidates and supernets); held-out text "
             f"document-disjoint. Reference: scratch {ref['steps']} steps × seeds {ref['seeds']}, averaged. "
             "Every figure with its bootstrap 95% interval in the JSON; '?' marks a top-quarter figure the "
             "reference cannot resolve (its own leave-one-out top-quarter τ is below 0.6).",
             table(["estimator", *(label for _, label in GOAL_COLUMNS), "s / candidate", "amortised s (search)"],
                   rows),
             png(AUDIT_SEARCH, "ranking audit on the search's own candidates"),
             f"**Goal of #15 §2** (`train/audit/goal.py`): {goal_verdict(goal)}."]
    if best is not None:
        rivals = checked[best]["rivals"]
        parts.append(f"Paired differences, {best} (the estimator nearest the goal) − each of its rivals, on the "
                     "same resamples:")
        parts.append(table(["rival", *GOAL_FIGURES], [[r, *(difference(best, r, f) for f in GOAL_FIGURES)]
                                                      for r in rivals]))
    check = a.get("reference_convergence")
    if check:
        verdict_text = "converged" if check["converged"] else "**not converged**"
        parts.append(f"Reference convergence: τ between the {check['steps']}-step and the {check['double_steps']}-step "
                     f"reference on {check['scored_at_both_budgets']} candidates = {check['tau']} ({verdict_text}; "
                     f"threshold {check['threshold']}).")
    parts.append(source(AUDIT_SEARCH))
    parts.append(supernet_length())
    return "\n\n".join(parts)


SUPERNET_LENGTH = "audit-supernet-length"


def supernet_length() -> str:
    """H5 of the audit's pre-registration: BIWS k = 0 per supernet (2,000 steps, seeds 2 and 0; 6,000 steps, seed
    0) on the same candidates, and the longer one minus each, paired (`benchmarks/audit_supernet_length.py`)."""
    if not (RESULTS / f"{SUPERNET_LENGTH}.json").is_file():
        return ""
    from benchmarks.audit_supernet_length import label

    d = load(SUPERNET_LENGTH)
    present = [key for key, _ in GOAL_COLUMNS if key in next(iter(d["supernets"].values()))]
    names = dict(GOAL_COLUMNS)
    rows = [[label(name), *(interval(figs.get(key)) for key in present)]
            for name, figs in {**d["supernets"], **d["differences"]}.items()]
    return "\n\n".join([
        "### A longer-trained supernet (H5)",
        code(f"OMP_NUM_THREADS=1 {load('audit-e2e-long')['command']}\npython -m benchmarks.audit_supernet_length"),
        f"BIWS k = 0 (the searches' fitness) on each supernet alone, on the same {d['candidates']} candidates and "
        "reference: the two 2,000-step supernets of the audit above (seed 2 is the one the two searches scored "
        "with) and the seed-0 supernet trained 6,000 steps; then the 6,000-step one minus each, paired on the same "
        f"candidate resamples ({d['bootstrap']['samples']}).",
        table(["BIWS k = 0 on", *(names[key] for key in present)], rows),
        png("audit-e2e-long", "ranking audit, 6,000-step supernet") + " " + source(SUPERNET_LENGTH, "audit-e2e-long"),
    ])


def render() -> str:
    header = (
        "# Results\n\n"
        "Generated by `python -m benchmarks.results_md` from `benchmarks/results/*.json`: do not edit by hand "
        "(`python -m benchmarks.results_md --check` exits 1 when this file is out of date). Every figure here is "
        "read from, or computed from, the JSON named under its section. All runs are on the CPU in float32 (each "
        "JSON's `machine` gives Python, torch, threads and device); *commit* is the commit a result was written "
        "at, *backfilled* where it was taken from `git log` for results written before they recorded it.\n\n"
        "Contents: quick start · ranking audit on the search's candidates · ranking audit · reference budget · "
        "search · compiler · pre-training throughput "
        "· short run · start-up · supernet switch · end-to-end · superseded 1,500-step audit · all "
        "result files."
    )
    sections = [header, quickstart(), audit_search(), audit_current(), reference_budget(), search_op(), search(),
                compiler(), pretrain_throughput(), short_run(), startup(), supernet_switch(), end_to_end(),
                audit_history(), index()]
    text = "\n\n".join(sections) + "\n"
    return re.sub(r"\n{3,}", "\n\n", text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if RESULTS.md differs from what would be written")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.is_file() else ""
        if current != text:
            print(f"{TARGET.relative_to(HERE.parent)} is out of date: run `python -m benchmarks.results_md`",
                  file=sys.stderr)
            return 1
        print(f"{TARGET.relative_to(HERE.parent)} is up to date")
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The methods study's table and plot: per method, the target task's gain and the forgetting on the other
suite tasks, each against the pretrained agent on the same worlds, with 95 % intervals.

Intervals treat the two evaluations as independent samples; they share their worlds, so the interval of the
paired difference is narrower and these are conservative. One task's gain gets Newcombe's hybrid score interval
(from the two Wilson intervals, sound at 0/n and n/n). Forgetting averages the T other tasks with equal weight:
a normal interval whose variance is the sum of the per-task variances over T squared, each from the
Agresti-Caffo rate (k + 1) / (n + 2), so a task at 0/n or n/n still counts its uncertainty.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any

from aimc.core.config import to_dict
from aimc.core.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from aimc.eval.metrics import wilson_interval
from aimc.finetune.methods_config import METHOD_TITLES, MethodsConfig

Z95 = 1.959963984540054
TARGET_GAIN = 0.2
MAX_FORGETTING = 0.05
"""Issue 14's bar for a method: the target task up by >= 0.2 with <= 0.05 mean success lost on the others."""


def _rate_var(t: dict[str, Any]) -> tuple[float, float]:
    """(success rate, Agresti-Caffo variance of it)."""
    n, k = int(t["episodes"]), int(t["successes"])
    adj = (k + 1) / (n + 2)
    return k / max(n, 1), adj * (1.0 - adj) / (n + 2)


def gain_interval(t: dict[str, Any], t0: dict[str, Any]) -> tuple[float, float]:
    """Newcombe's 95 % interval of rate(t) - rate(t0) from the two Wilson intervals."""
    (p1, _), (p0, _) = _rate_var(t), _rate_var(t0)
    l1, u1 = wilson_interval(int(t["successes"]), int(t["episodes"]))
    l0, u0 = wilson_interval(int(t0["successes"]), int(t0["episodes"]))
    d = p1 - p0
    return d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)


def summarize(cfg: MethodsConfig, target: str, second: str, prompt: str, evals: dict[str, dict[str, Any]],
              training: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Rows per policy (the pretrained agent first) from the evaluations present so far."""
    base = evals["pretrained"]["tasks"]
    others = sorted(t for t in base if t not in (target, second))
    rows = []
    for name, ev in evals.items():
        tasks = ev["tasks"]
        per_task = {t: _rate_var(tasks[t])[0] for t in sorted(tasks)}
        row: dict[str, Any] = {"method": name, "title": METHOD_TITLES.get(name, "pretrained agent, no fine-tune"),
                               "per_task": per_task, "mean_all": sum(per_task.values()) / len(per_task)}
        for key, task in (("target", target), ("second", second)):
            p, p0 = _rate_var(tasks[task])[0], _rate_var(base[task])[0]
            row[key] = {"success": p, "gain": p - p0, "gain_ci": list(gain_interval(tasks[task], base[task]))}
        mean = sum(_rate_var(tasks[t])[0] for t in others) / len(others)
        mean0 = sum(_rate_var(base[t])[0] for t in others) / len(others)
        var = sum(_rate_var(tasks[t])[1] + _rate_var(base[t])[1] for t in others) / len(others) ** 2
        half = Z95 * math.sqrt(var)
        row["others"] = {"mean": mean, "forgetting": mean0 - mean, "forgetting_ci": [mean0 - mean - half, mean0 - mean + half]}
        row["deaths_before_success"] = sum(t["deaths_before_success"] for t in tasks.values()) / max(
            sum(t["episodes"] for t in tasks.values()), 1)
        row["meets_target"] = name != "pretrained" and row["target"]["gain"] >= TARGET_GAIN and \
            row["others"]["forgetting"] <= MAX_FORGETTING
        if name in training:
            row["train_wall_min"] = training[name]["wall_s"] / 60.0
            row["train_frames"] = training[name]["train_frames"]
        rows.append(row)
    return {"task": cfg.task, "target": target, "second": second, "others": others, "fixed_prompt": prompt,
            "episodes_per_task": cfg.eval_episodes, "config": to_dict(cfg), "rows": rows}


def format_methods_table(summary: dict[str, Any]) -> str:
    """The rows as Markdown: the gain/forgetting table, then success per task and policy."""
    t, s = summary["target"], summary["second"]
    lines = [f"Target {t}, second task {s}; forgetting = drop in mean success over the other "
             f"{len(summary['others'])} suite tasks; {summary['episodes_per_task']} episodes per task, the same worlds "
             "for every policy; 95 % intervals (unpaired, so conservative).", "",
             f"| method | {t} | gain [95 % CI] | {s} gain | others' mean | forgetting [95 % CI] | died first | "
             "training (min) | meets target |", "|---|---|---|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        g, o = r["target"], r["others"]
        if r["method"] == "pretrained":  # the line the others are measured from
            lines.append(f"| pretrained | {g['success']:.2f} | – | – | {o['mean']:.2f} | – | "
                         f"{r['deaths_before_success']:.2f} | – | – |")
            continue
        lines.append(f"| {r['method']} | {g['success']:.2f} | {g['gain']:+.2f} [{g['gain_ci'][0]:+.2f}, {g['gain_ci'][1]:+.2f}] "
                     f"| {r['second']['gain']:+.2f} | {o['mean']:.2f} | {o['forgetting']:+.2f} "
                     f"[{o['forgetting_ci'][0]:+.2f}, {o['forgetting_ci'][1]:+.2f}] | {r['deaths_before_success']:.2f} "
                     f"| {r['train_wall_min']:.1f} | {'yes' if r['meets_target'] else 'no'} |")
    tasks = list(summary["rows"][0]["per_task"])
    lines += ["", "| task | " + " | ".join(r["method"] for r in summary["rows"]) + " |",
              "|---|" + "---|" * len(summary["rows"])]
    for task in tasks:
        lines.append(f"| {task} | " + " | ".join(f"{r['per_task'].get(task, float('nan')):.2f}" for r in summary["rows"]) + " |")
    return "\n".join(lines)


def plot_png(summary: dict[str, Any]) -> bytes:
    """Gain on the target and forgetting on the others per method, with intervals; PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in summary["rows"] if r["method"] != "pretrained"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    xs = range(len(rows))
    for offset, key, sub, label in ((-0.2, "target", "gain", f"gain on {summary['target']}"),
                                    (0.2, "others", "forgetting", "forgetting on the others")):
        vals = [r[key][sub] for r in rows]
        ci = [r[key][f"{sub}_ci"] for r in rows]
        err = [[v - c[0] for v, c in zip(vals, ci, strict=True)], [c[1] - v for v, c in zip(vals, ci, strict=True)]]
        ax.bar([x + offset for x in xs], vals, width=0.4, yerr=err, capsize=3, label=label)
    ax.axhline(TARGET_GAIN, color="tab:blue", linestyle=":", linewidth=1)
    ax.axhline(MAX_FORGETTING, color="tab:orange", linestyle=":", linewidth=1)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(list(xs), [r["method"] for r in rows])
    ax.set_ylabel("success difference vs the pretrained agent")
    ax.set_title(f"note-004 methods: target {summary['target']}")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def report_html(summary: dict[str, Any], png: bytes | None) -> str:
    table = _html_tables(format_methods_table(summary))
    img = f'<img alt="gain and forgetting" src="data:image/png;base64,{base64.b64encode(png).decode()}"/>' if png else ""
    return ("<!doctype html><html><head><meta charset='utf-8'><title>aimc fine-tuning methods</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1em}"
            "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}</style></head><body>"
            f"<h1>Fine-tuning methods (note 004): {html.escape(summary['target'])}</h1>"
            f"<p>Fixed instruction: “{html.escape(summary['fixed_prompt'])}”.</p>{table}{img}</body></html>")


def _html_tables(markdown: str) -> str:
    """The Markdown of `format_methods_table` as HTML: paragraphs and pipe tables (no other syntax occurs)."""
    out, rows = [], []

    def flush() -> None:
        if rows:
            head, *body = rows
            out.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body)
                       + "</table>")
            rows.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not all(set(c) <= {"-"} for c in cells):
                rows.append(cells)
        else:
            flush()
            if line.strip():
                out.append(f"<p>{html.escape(line)}</p>")
    flush()
    return "".join(out)


def write_outputs(root: Path, summary: dict[str, Any]) -> dict[str, str]:
    """methods.json, methods.md, plots/gain_forgetting.png and report.html (each written atomically)."""
    atomic_write_json(root / "methods.json", summary)
    atomic_write_text(root / "methods.md", format_methods_table(summary) + "\n")
    png = plot_png(summary) if len(summary["rows"]) > 1 else None
    if png is not None:
        atomic_write_bytes(root / "plots" / "gain_forgetting.png", png)
    atomic_write_text(root / "report.html", report_html(summary, png))
    return {"json": str(root / "methods.json"), "html": str(root / "report.html")}

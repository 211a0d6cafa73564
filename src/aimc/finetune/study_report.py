"""The study's table and plots: success per (route, init, N) pooled over seeds with Wilson 95 % intervals,
against demonstrations, training wall time and environment steps (PNG files, embedded in report.html).

Pooling: every evaluation episode of every seed of a row counts once, so the interval is over episodes;
the per-seed rates are kept beside it to show the spread between seeds (demonstration pools, training seeds).
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from aimc.core.config import to_dict
from aimc.core.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from aimc.eval.metrics import wilson_interval
from aimc.finetune.study_config import ROUTE_TITLES, StudyConfig

PLOTS = {
    "success_vs_demos": ("n", "demonstrations N", False),
    "success_vs_wall": ("wall_min", "training wall time (min, BC + route)", True),
    "success_vs_steps": ("env_steps", "environment steps (demonstrations + route rollouts)", True),
}


def _label(route: str, init: str) -> str:
    if route == "none":
        return "pretrained, no fine-tune"
    return f"{init} + {ROUTE_TITLES[route]}"


def summarize(cfg: StudyConfig, suite_task: str, cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows (route, init, N) pooled over the seeds present so far, sorted for reading."""
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for c in cells:
        groups.setdefault((c["route"], c["init"], c["n"]), []).append(c)
    order = {r: i for i, r in enumerate(("none", "bc", "bc_dagger", "ppo"))}
    rows = []
    for (route, init, n), cs in sorted(groups.items(), key=lambda kv: (order[kv[0][0]], kv[0][1], kv[0][2])):
        k = sum(c["eval"]["successes"] for c in cs)
        total = sum(c["eval"]["episodes"] for c in cs)
        lo, hi = wilson_interval(k, total)
        rows.append({
            "route": route, "init": init, "n": n, "label": _label(route, init), "seeds": [c["seed"] for c in cs],
            "successes": k, "episodes": total, "success": k / total if total else 0.0, "ci": [lo, hi],
            "per_seed": [c["eval"]["successes"] / max(c["eval"]["episodes"], 1) for c in cs],
            "deaths_before_success": sum(c["eval"]["deaths_before_success"] for c in cs) / max(total, 1),
            "wall_min": sum(c["wall_s"] for c in cs) / len(cs) / 60.0,
            "env_steps": sum(c["env_steps"] for c in cs) / len(cs),
        })
    return {"task": cfg.task, "suite_task": suite_task, "config": to_dict(cfg), "rows": rows, "cells": cells}


def format_study_table(summary: dict[str, Any]) -> str:
    """The rows as a Markdown table (also printed by `aimc study task-finetune`)."""
    lines = [f"Task {summary['task']} (suite task {summary['suite_task']}); success pooled over seeds, Wilson 95 %.", "",
             "| route | init | N demos | success [95 % CI] | per seed | died first | training wall (min) | env steps |",
             "|---|---|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        route = "none" if r["route"] == "none" else ROUTE_TITLES[r["route"]]
        lines.append(f"| {route} | {r['init']} | {r['n']} | {r['success']:.2f} [{r['ci'][0]:.2f}, {r['ci'][1]:.2f}] "
                     f"({r['successes']}/{r['episodes']}) | {' '.join(f'{x:.2f}' for x in r['per_seed'])} | "
                     f"{r['deaths_before_success']:.2f} | {r['wall_min']:.1f} | {r['env_steps']:,.0f} |")
    return "\n".join(lines)


def plot_png(summary: dict[str, Any], key: str) -> bytes:
    """One plot: success (with its interval) against `key` for every (init, route) line; PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    field, xlabel, logx = PLOTS[key]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    lines: dict[str, list[dict[str, Any]]] = {}
    for r in summary["rows"]:
        lines.setdefault(r["label"], []).append(r)
    for label, rows in lines.items():
        rows = sorted(rows, key=lambda r: r[field])
        xs = [max(r[field], 1e-3) for r in rows]
        ys = [r["success"] for r in rows]
        err = [[r["success"] - r["ci"][0] for r in rows], [r["ci"][1] - r["success"] for r in rows]]
        if rows[0]["route"] == "none":
            if field == "n":
                ax.axhline(ys[0], color="grey", linestyle="--", label=label)
            continue
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, linestyle="--" if rows[0]["init"] == "scratch" else "-",
                    label=label)
    if field == "n" or logx:
        ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"success ({summary['suite_task']})")
    ax.set_title(f"{summary['task']}: {key.replace('_', ' ')}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def report_html(summary: dict[str, Any], pngs: dict[str, bytes]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(r['label'])}</td><td>{r['n']}</td><td>{r['success']:.2f} "
        f"[{r['ci'][0]:.2f}, {r['ci'][1]:.2f}]</td><td>{r['successes']}/{r['episodes']}</td>"
        f"<td>{' '.join(f'{x:.2f}' for x in r['per_seed'])}</td><td>{r['deaths_before_success']:.2f}</td>"
        f"<td>{r['wall_min']:.1f}</td><td>{r['env_steps']:,.0f}</td></tr>"
        for r in summary["rows"])
    imgs = "".join(f'<figure><img alt="{k}" src="data:image/png;base64,{base64.b64encode(v).decode()}"/></figure>'
                   for k, v in pngs.items())
    return ("<!doctype html><html><head><meta charset='utf-8'><title>aimc task fine-tuning study</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}figure{display:inline-block;margin:0 1em}"
            "</style></head><body>"
            f"<h1>Task fine-tuning study: {html.escape(summary['task'])}</h1>"
            f"<p>Suite task {html.escape(summary['suite_task'])}; success pooled over seeds with Wilson 95 % intervals; "
            "training wall time and environment steps are per seed (BC + route; evaluation excluded).</p>"
            "<table><tr><th>route</th><th>N</th><th>success [95 % CI]</th><th>episodes</th><th>per seed</th>"
            f"<th>died first</th><th>wall (min)</th><th>env steps</th></tr>{rows}</table>{imgs}</body></html>")


def write_outputs(root: Path, summary: dict[str, Any]) -> dict[str, str]:
    """study.json, study.md, plots/*.png and report.html (each written atomically)."""
    atomic_write_json(root / "study.json", summary)
    atomic_write_text(root / "study.md", format_study_table(summary) + "\n")
    pngs = {key: plot_png(summary, key) for key in PLOTS} if summary["rows"] else {}
    for key, data in pngs.items():
        atomic_write_bytes(root / "plots" / f"{key}.png", data)
    atomic_write_text(root / "report.html", report_html(summary, pngs))
    return {"json": str(root / "study.json"), "html": str(root / "report.html")}

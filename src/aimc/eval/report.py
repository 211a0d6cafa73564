"""Self-contained HTML reports: inline SVG plots (no plotting dependency), tables, and base64-embedded videos.

Plots: success bars with 95 % Wilson intervals per task and condition, a specificity heat map per
prompted condition and horizon, and the CFG curve (mean success against the guidance scale). Each plot
is an `<svg class="plot" id="...">` so tests and scripts can find them.
"""

from __future__ import annotations

import base64
import html
import math
from typing import Any

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")
CSS = """body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}svg.plot{display:block;margin:8px 0 20px}
.videos{display:flex;flex-wrap:wrap;gap:12px}.videos figure{margin:0}figcaption{font-size:12px;max-width:256px}
.note{color:#666;font-size:13px}"""


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{digits}f}" if isinstance(v, float) else _esc(v)


def bar_chart(svg_id: str, groups: list[str], series: dict[str, list[tuple[float, float, float]]], title: str) -> str:
    """Grouped bars: `series[name][g] = (rate, ci_low, ci_high)` for group g; error bars show the interval."""
    w_group, h, top, left, bottom = max(40, 18 * len(series) + 16), 220, 30, 44, 90
    width = left + w_group * len(groups) + 160
    parts = [f'<svg class="plot" id="{_esc(svg_id)}" width="{width}" height="{h + top + bottom}" '
             f'xmlns="http://www.w3.org/2000/svg" font-size="11">',
             f'<text x="{left}" y="16" font-size="13" font-weight="bold">{_esc(title)}</text>']
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        y = top + h * (1 - tick)
        parts.append(f'<line x1="{left}" x2="{left + w_group * len(groups)}" y1="{y}" y2="{y}" stroke="#ddd"/>'
                     f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">{tick:.2f}</text>')
    bw = (w_group - 16) / max(len(series), 1)
    for si, (name, vals) in enumerate(series.items()):
        color = PALETTE[si % len(PALETTE)]
        for gi, (rate, lo, hi) in enumerate(vals):
            if rate is None or math.isnan(rate):
                continue
            x = left + gi * w_group + 8 + si * bw
            parts.append(f'<rect x="{x:.1f}" y="{top + h * (1 - rate):.1f}" width="{bw - 2:.1f}" '
                         f'height="{h * rate:.1f}" fill="{color}"><title>{_esc(name)} {groups[gi]}: '
                         f'{rate:.2f} [{lo:.2f}, {hi:.2f}]</title></rect>')
            cx = x + (bw - 2) / 2
            parts.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{top + h * (1 - hi):.1f}" '
                         f'y2="{top + h * (1 - lo):.1f}" stroke="#222"/>')
        parts.append(f'<rect x="{left + w_group * len(groups) + 12}" y="{top + 14 * si}" width="10" height="10" '
                     f'fill="{color}"/><text x="{left + w_group * len(groups) + 26}" y="{top + 9 + 14 * si}">'
                     f'{_esc(name)}</text>')
    for gi, g in enumerate(groups):
        x = left + gi * w_group + w_group / 2
        parts.append(f'<text transform="translate({x:.1f},{top + h + 8}) rotate(40)">{_esc(g)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def heatmap(svg_id: str, rows: list[str], cols: list[str], matrix: list[list[float]], title: str) -> str:
    """Cells coloured by rate (white 0 -> blue 1), each labelled with its value."""
    cell, left, top = 44, 150, 120
    width, height = left + cell * len(cols) + 10, top + cell * len(rows) + 10
    parts = [f'<svg class="plot" id="{_esc(svg_id)}" width="{width}" height="{height}" '
             f'xmlns="http://www.w3.org/2000/svg" font-size="11">',
             f'<text x="4" y="16" font-size="13" font-weight="bold">{_esc(title)}</text>']
    for j, c in enumerate(cols):
        x = left + j * cell + cell / 2
        parts.append(f'<text transform="translate({x:.1f},{top - 6}) rotate(-50)">{_esc(c)}</text>')
    for i, r in enumerate(rows):
        y = top + i * cell
        parts.append(f'<text x="{left - 6}" y="{y + cell / 2 + 4}" text-anchor="end">{_esc(r)}</text>')
        for j, v in enumerate(matrix[i]):
            ok = v is not None and not math.isnan(v)
            shade = int(255 - 200 * v) if ok else 230
            fill = f"rgb({shade},{shade},255)" if ok else "#eee"
            stroke = ' stroke="#222" stroke-width="2"' if i == j else ' stroke="#fff"'
            parts.append(f'<rect x="{left + j * cell}" y="{y}" width="{cell}" height="{cell}" fill="{fill}"{stroke}/>'
                         f'<text x="{left + j * cell + cell / 2}" y="{y + cell / 2 + 4}" text-anchor="middle" '
                         f'fill="{"#fff" if ok and v > 0.6 else "#222"}">{_fmt(v)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def line_chart(svg_id: str, xs: list[float], series: dict[str, list[float]], title: str, xlabel: str) -> str:
    """Lines over x (e.g. CFG scale) with y in [0, 1]."""
    w, h, left, top = 420, 220, 44, 30
    lo, hi = min(xs), max(xs)
    span = (hi - lo) or 1.0

    def px(x: float) -> float:
        return left + w * (x - lo) / span

    parts = [f'<svg class="plot" id="{_esc(svg_id)}" width="{left + w + 170}" height="{top + h + 40}" '
             f'xmlns="http://www.w3.org/2000/svg" font-size="11">',
             f'<text x="{left}" y="16" font-size="13" font-weight="bold">{_esc(title)}</text>',
             f'<text x="{left + w / 2}" y="{top + h + 34}" text-anchor="middle">{_esc(xlabel)}</text>']
    for tick in (0, 0.5, 1.0):
        y = top + h * (1 - tick)
        parts.append(f'<line x1="{left}" x2="{left + w}" y1="{y}" y2="{y}" stroke="#ddd"/>'
                     f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">{tick:.1f}</text>')
    for x in xs:
        parts.append(f'<text x="{px(x):.1f}" y="{top + h + 16}" text-anchor="middle">{x:g}</text>')
    for si, (name, ys) in enumerate(series.items()):
        color = PALETTE[si % len(PALETTE)]
        pts = [(px(x), top + h * (1 - y)) for x, y in zip(xs, ys, strict=True) if y is not None and not math.isnan(y)]
        if pts:
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="{3 if si == 0 else 1.5}" points="'
                         + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts) + '"/>')
            parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>' for x, y in pts]
        parts.append(f'<text x="{left + w + 10}" y="{top + 10 + 14 * si}" fill="{color}">{_esc(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def video_html(caption: str, mp4: bytes) -> str:
    data = base64.b64encode(mp4).decode("ascii")
    return (f'<figure><video controls loop muted width="256" src="data:video/mp4;base64,{data}"></video>'
            f"<figcaption>{_esc(caption)}</figcaption></figure>")


def tasks_report_html(report: dict[str, Any], videos: list[tuple[str, bytes]] | None = None) -> str:
    """The `aimc eval tasks` report page from the JSON report (and recorded videos)."""
    tasks, conds = report["tasks"], report["conditions"]
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>aimc eval: {_esc(report['suite'])}</title>"
           f"<style>{CSS}</style></head><body><h1>Task suite {_esc(report['suite'])}</h1>",
           f"<p class='note'>{report['episodes']} episodes per task and condition; world {_esc(report['world'])}; "
           f"{report['retries']} episode(s) retried after a worker error, crash or timeout; "
           f"{report['lost_episodes']} lost after all attempts."
           + (f" Agent prompts chained by planner <b>{_esc(report['planner'])}</b>." if report.get("planner") == "chain" else "")
           + "</p>"]
    rows = [[_esc(n), _fmt(c["mean_success"]), _fmt(c["death_rate"]["rate"]), _fmt(c.get("mean_deaths_before_success")),
             str(c["episodes_run"]),
             _fmt(c["cond_scale"], 1) if c["cond_scale"] is not None else "–",
             _fmt(c.get("mean_specificity", {}).get("full")), _fmt(c.get("mean_specificity", {}).get("50"))]
            for n, c in conds.items()]
    out.append(_table(["condition", "mean success", "death rate", "died before success", "episodes", "cond scale",
                       "mean specificity (full)", "mean specificity (50)"], rows))
    series = {n: [(c["tasks"][t]["success"]["rate"], c["tasks"][t]["success"]["ci_low"],
                   c["tasks"][t]["success"]["ci_high"]) for t in tasks] for n, c in conds.items()}
    out.append("<h2>Success per task (95 % Wilson intervals)</h2>")
    out.append(bar_chart("success-bars", tasks, series, "success rate by task and condition"))
    rows = []
    for t in tasks:
        for n, c in conds.items():
            s = c["tasks"][t]
            rows.append([_esc(t), _esc(n), f"{s['success']['successes']}/{s['success']['n']}",
                         f"{_fmt(s['success']['rate'])} [{_fmt(s['success']['ci_low'])}, {_fmt(s['success']['ci_high'])}]",
                         _fmt(s["median_steps_to_success"], 0), _fmt(s["deaths"]["rate"]),
                         _fmt(s.get("deaths_before_success", {}).get("rate")),
                         *[_fmt(s["by_horizon"][h]) for h in report["horizons"][1:]]])
    out.append(_table(["task", "condition", "successes", "rate [95 % CI]", "median steps", "deaths", "died first",
                       *[f"rate @{h}" for h in report["horizons"][1:]]], rows))
    for n, c in conds.items():
        spec = c.get("specificity")
        if not spec:
            continue
        out.append(f"<h2>Specificity: {_esc(n)}</h2><p class='note'>Rows: the task whose instructions were given; "
                   "columns: each task's success predicate; cell: rate. Specificity = diagonal minus the mean "
                   "of the column's other rows.</p>")
        for h in report["horizons"]:
            out.append(heatmap(f"specificity-{n}-{h}", spec["rows"], spec["columns"], spec["matrix"][h],
                               f"{n}: success rate by instruction, horizon {h}"))
        out.append(_table(["task", *[f"specificity @{h}" for h in report["horizons"]]],
                          [[_esc(t), *[_fmt(spec["per_task"][h][t]) for h in report["horizons"]]] for t in spec["rows"]]))
    sweep = report.get("cfg_sweep")
    if sweep and len(sweep["scales"]) >= 1:
        out.append("<h2>Classifier-free guidance sweep</h2>")
        lines = {"mean over tasks": sweep["mean_success"], **sweep["per_task"]}
        out.append(line_chart("cfg-curve", sweep["scales"], lines, "success rate vs cond scale λ", "cond scale λ"))
    if videos:
        out.append("<h2>Episodes</h2><div class='videos'>")
        out += [video_html(cap, mp4) for cap, mp4 in videos]
        out.append("</div>")
    if report.get("failures"):
        out.append("<h2>Worker failures</h2><ul>" + "".join(f"<li>{_esc(f)}</li>" for f in report["failures"]) + "</ul>")
    out.append("</body></html>")
    return "\n".join(out)


def prior_report_html(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]], title: str) -> str:
    """One comparison table across (embedder, prior) pairs; `columns` = (key, label, better)."""
    header = ["embedder", "goal source", *[f"{label} ({better})" if better else label for _, label, better in columns]]
    body = [[_esc(r["embedder"]), _esc(r["goal_source"]), *[_fmt(r.get(k), 3) for k, _, _ in columns]] for r in rows]
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{_esc(title)}</title><style>{CSS}</style>"
            f"</head><body><h1>{_esc(title)}</h1>{_table(header, body)}<p class='note'>Definitions: "
            "docs/evaluation.md.</p></body></html>")

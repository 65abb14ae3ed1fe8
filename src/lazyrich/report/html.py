"""A self-contained HTML report: claims table (verdict pass / fail / inconclusive, with the interval of
claims measured over seeds), figures embedded as data URIs, the exact
configuration, code version and runtime. No external resources, no scripts: it opens offline.

`write_report(path, title, claims=None, figures=[(png_path, caption), ...], config={...}, runtime=...)`
is used by `lazyrich reproduce` and by `lazyrich demo`.
"""
from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..errors import require

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%;font-size:.9em}th,td{border:1px solid #ddd;padding:4px 6px;vertical-align:top}
th{background:#f4f4f4;text-align:left}td.num{text-align:right;font-family:ui-monospace,monospace;white-space:nowrap}
tr.pass td.verdict{color:#11632b;font-weight:600}tr.fail td.verdict{color:#a40000;font-weight:600}
tr.fail{background:#fff0f0}tr.inconclusive{background:#fff8e1}tr.inconclusive td.verdict{color:#8a5a00;font-weight:600}
.warn{background:#fff8e1;color:#8a5a00}tr.sub td{font-size:.85em;color:#555}
.banner{padding:.6em 1em;border-radius:4px;font-weight:600}.ok{background:#e6f4ea;color:#11632b}.bad{background:#fde8e8;color:#a40000}
figure{margin:1.2em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.9em;color:#444}
pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.85em}dl.env{display:grid;grid-template-columns:max-content auto;gap:2px 12px}
dl.env dt{font-weight:600}dl.env dd{margin:0;font-family:ui-monospace,monospace}
"""


def _num(x: Any) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        if not math.isfinite(x):
            return html.escape(str(x))
        return f"{x:.4g}"
    return html.escape(str(x))


def _claim_rows(claims: Sequence[Any], sub: bool = False) -> list[str]:
    rows = []
    for c in claims:
        v = getattr(c, "verdict", "pass" if c.passed else "fail")
        if sub:  # a control's sub-claims must fail: their row is green when they do
            state = {"fail": "pass", "pass": "fail"}.get(v, "inconclusive")
            verdict = {"pass": "fails, as required", "fail": "PASSES: control broken"}.get(state, "inconclusive")
        else:
            state, verdict = v, {"pass": "pass", "fail": "FAIL"}.get(v, "INCONCLUSIVE")
        cls = state + (" sub" if sub else "")
        unc = getattr(c, "uncertainty", "")
        rows.append(
            f'<tr class="{cls}"><td>{"↳ " if sub else ""}{html.escape(c.id)}</td><td>{html.escape(c.statement)}</td>'
            f'<td class="num">{_num(c.measured)}</td><td>{html.escape(unc)}</td><td class="num">{_num(c.expected)}</td>'
            f'<td class="num">{html.escape(c.relation)}</td><td>{html.escape(c.provenance)}</td>'
            f'<td>{html.escape(c.source)}</td><td class="verdict">{verdict}</td></tr>')
        rows.extend(_claim_rows(c.details, sub=True))
    return rows


def claims_table(claims: Sequence[Any]) -> str:
    """HTML table of claims (objects with id, statement, measured, expected, relation, provenance,
    source, passed, details)."""
    head = ("<tr><th>id</th><th>statement</th><th>measured</th><th>uncertainty over seeds</th><th>expected</th><th>test</th>"
            "<th>provenance</th><th>source</th><th>result</th></tr>")
    return f"<table>{head}{''.join(_claim_rows(claims))}</table>"


def embed_png(path: Path | str) -> str:
    """`data:image/png;base64,...` for a PNG file (the report carries its images)."""
    data = Path(path).read_bytes()
    require(data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG file: save figures as PNG to embed them")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _json_default(x: Any) -> Any:
    if hasattr(x, "tolist"):
        return x.tolist()
    return str(x)


def render_report(title: str, claims: Sequence[Any] | None = None, figures: Iterable[tuple[Path | str, str]] = (),
                  config: Mapping[str, Any] | None = None, runtime: float | None = None,
                  environment: Mapping[str, Any] | None = None, summary: str = "", notes: Sequence[str] = (),
                  source: str = "") -> str:
    """The report as one HTML string (see `write_report`)."""
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    if summary:
        parts.append(f"<p>{html.escape(summary)}</p>")
    if source:
        parts.append(f"<p><b>Source:</b> {html.escape(source)}</p>")
    if claims is not None:
        verdict = lambda c: getattr(c, "verdict", "pass" if c.passed else "fail")  # noqa: E731
        failed = [c.id for c in claims if verdict(c) == "fail"]
        unsure = [c.id for c in claims if verdict(c) == "inconclusive"]
        if failed:
            parts.append(f'<p class="banner bad">{len(failed)} of {len(claims)} claims FAILED: {html.escape(", ".join(failed))}</p>')
        if unsure:
            parts.append(f'<p class="banner warn">{len(unsure)} of {len(claims)} claims INCONCLUSIVE (the interval over seeds '
                         f'straddles the threshold): {html.escape(", ".join(unsure))}</p>')
        if not failed and not unsure:
            parts.append(f'<p class="banner ok">All {len(claims)} claims passed.</p>')
        parts.append("<h2>Claims</h2>" + claims_table(claims))
        parts.append("<p>m = measured, e = expected. A claim measured over seeds passes only when its whole confidence "
                     "interval satisfies the test, fails when the whole interval violates it, and is inconclusive when it "
                     "straddles; an ordering passes when it holds in ≥ 95 % of bootstrap resamples of the seeds. Exact "
                     "claims keep their tolerance test. A negative control passes when the switched pipeline fails every "
                     "claim listed under it (measured = number failed).</p>")
    figs = list(figures)
    if figs:
        parts.append("<h2>Figures</h2>")
        for i, (png, caption) in enumerate(figs, 1):
            parts.append(f'<figure><img src="{embed_png(png)}" alt="figure {i}: {html.escape(Path(png).stem)}">'
                         f"<figcaption>Figure {i}. {html.escape(caption)}</figcaption></figure>")
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    if config is not None:
        text = "\n".join(f"{k}: {json.dumps(v, default=_json_default, ensure_ascii=False)}" for k, v in dict(config).items())
        parts.append(f"<h2>Configuration</h2><pre>{html.escape(text)}</pre>")
    env = dict(environment or {})
    if runtime is not None:
        env.setdefault("runtime", f"{runtime:.1f} s")
    if env:
        parts.append("<h2>Environment</h2><dl class=\"env\">" + "".join(
            f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>" for k, v in env.items()) + "</dl>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(path: Path | str, title: str, claims: Sequence[Any] | None = None,
                 figures: Iterable[tuple[Path | str, str] | Path | str] = (), config: Mapping[str, Any] | None = None,
                 runtime: float | None = None, environment: Mapping[str, Any] | None = None, summary: str = "",
                 notes: Sequence[str] = (), source: str = "") -> Path:
    """Write a self-contained report.html. `figures`: PNG paths or (PNG path, caption) pairs; `claims`:
    `lazyrich.experiments.Claim` objects (None: no claims section); `config`: JSON-able mapping;
    `environment`: extra key/value lines (code version, device, ...). Returns the path."""
    from ..experiments.runner import code_version

    figs = [(f, "") if isinstance(f, (str, Path)) else f for f in figures]
    env = {"code version": code_version(), **dict(environment or {})}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(title, claims, figs, config, runtime, env, summary, notes, source), encoding="utf-8")
    return path

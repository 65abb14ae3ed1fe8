"""`lazyrich view STORE [RUN]`: one self-contained interactive HTML page of a stored sweep.

A heatmap of any recorded observable over any two swept axes at any recorded step (dropdowns and a
step slider; members that share a cell are averaged, the hover says how many), the trajectories of a
cell's members on click, the exact theory beside them where `lazyrich.theory` has a solution for the
configuration, and the run's configuration. Plotly's JavaScript is inlined: nothing is fetched when
the page is opened. The store is only read.
"""
from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from .errors import LazyrichError, require

MAX_VALUES = 2_000_000      # members × steps × observables embedded in one page (a few tens of MB of JSON)
MAX_THEORY_MEMBERS = 5_000  # exact-theory overlays computed per page
HIDDEN = {"member", "chunk", "status", "diverged_step", "digest"}


def _finite(values: Any) -> list[float | None]:
    return [float(v) if v is not None and math.isfinite(float(v)) else None for v in values]


def _series_name(observable: str, layer: str, vector: bool) -> str:
    name = observable if not layer else f"{observable}[{layer}]"
    return f"{name} (mean over index)" if vector else name


def collect(store: str | Path, run: str = "latest", observables: list[str] | None = None) -> dict[str, Any]:
    """What the page shows, as JSON-ready data: run metadata and configuration, members and their swept
    axes, steps, per-observable values [step][member], and theory overlays where they exist."""
    from .sweep.store import Store

    db = Store(store)
    run_id = db.resolve(run)
    info = db.run(run_id)
    members = db.members(run_id)
    records = db.records(run_id)
    require(len(members) > 0 and len(records) > 0, f"run {run_id} has no stored members yet: wait for a chunk, "
                                                   "or resume it with `lazyrich sweep SPEC --resume`")
    if observables:
        known = sorted(set(records.observable))
        unknown = [o for o in observables if o not in known]
        if unknown:
            raise LazyrichError(f"--observable {unknown[0]!r} was not recorded in {run_id}: choose from {', '.join(known)}")
        records = records[records.observable.isin(observables)]
    members = members.sort_values("member").reset_index(drop=True)
    ids = members.member.to_numpy()
    steps = sorted(int(s) for s in records.step.unique())
    vector = records.groupby(["observable", "layer"])["index"].max() > 0
    series = records.groupby(["observable", "layer", "step", "member"], observed=True).value.mean()
    names = [(o, l, _series_name(o, l, bool(vector[(o, l)]))) for o, l in vector.index]
    n_values = len(names) * len(steps) * len(ids)
    require(n_values <= MAX_VALUES, f"run {run_id} has {n_values:,} values to embed (observables × steps × members), "
                                    f"more than {MAX_VALUES:,}: pick observables with --observable NAME")
    values: dict[str, list[list[float | None]]] = {}
    times: dict[str, list[float | None]] = {}
    for o, l, name in names:
        grid = series.loc[(o, l)].unstack("member").reindex(index=steps, columns=ids)
        values[name] = [_finite(row) for row in grid.to_numpy()]
    t = records.groupby("step").time.mean().reindex(steps)
    times["time"] = _finite(t.to_numpy())
    axes = [c for c in members.columns if c not in HIDDEN and members[c].nunique(dropna=False) > 1]
    cols = {c: [v.item() if hasattr(v, "item") else v for v in members[c].to_numpy()] for c in members.columns
            if c not in {"digest"}}
    config = info["config"]
    config = json.loads(config) if isinstance(config, str) else config
    theory, theory_note = _theory(config, members, records, steps, [n for n in names])
    run_meta = {k: str(info[k]) for k in ("run_id", "name", "status", "code_version", "device", "backend", "threads",
                                           "host", "started_at", "ended_at") if k in info}
    run_meta["members"] = f"{info['n_members']} ({', '.join(f'{n} {s}' for s, n in info['member_status'].items())})"
    run_meta["chunks"] = f"{info['chunks_done']}/{info['n_chunks']} stored"
    return {"run": run_meta, "config": config, "axes": axes, "members": cols, "steps": steps, "time": times["time"],
            "observables": [n for _, _, n in names], "values": values, "theory": theory, "theory_note": theory_note}


def _theory(config: dict[str, Any], members: Any, records: Any, steps: list[int],
            names: list[tuple[str, str, str]]) -> tuple[dict[str, dict[str, list[float | None]]], str]:
    """Exact-theory values {series: {member: [value per step]}} for the members whose configuration has a
    closed form in lazyrich.theory, and a sentence saying which solution was used or why there is none.

    Covered (two-layer linear nets without bias on whitened inputs; gradient flow, so a GD run is
    compared at its time t = Σ η): width 1, the single neuron of Kunin et al.; wider, the λ-balanced
    solution of Dominé et al. for λ-balanced inits (each member's init is rebuilt from the stored spec,
    which determines it; an init that is not λ-balanced gets no overlay, and the note says why)."""
    spec_dict = config.get("spec") if isinstance(config, dict) else None
    model = (spec_dict or {}).get("model", {})
    if not spec_dict or model.get("depth", 2) != 2 or model.get("activation") != "linear" or model.get("bias"):
        return {}, ("no theory overlay: lazyrich.theory's exact solutions cover two-layer linear nets without bias "
                    "on whitened inputs (the single neuron; λ-balanced inits at any width); this run's model is "
                    f"width {model.get('width')}, depth {model.get('depth')}, {model.get('activation')}")
    if len(members) > MAX_THEORY_MEMBERS:
        return {}, f"no theory overlay: more than {MAX_THEORY_MEMBERS} members"
    import numpy as np
    import torch

    from .ensemble import build
    from .models import MLP
    from .sweep.executor import BUILD_COLUMNS
    from .sweep.planner import widths
    from .sweep.validate import from_dict
    from .theory import lambda_balanced, linear_inputs, single_neuron, single_neuron_inputs

    neuron = model.get("width") == 1
    solve, inputs = (single_neuron, single_neuron_inputs) if neuron else (lambda_balanced, linear_inputs)
    label = ("the single neuron (Kunin et al. 2024; lazyrich.theory.single_neuron)" if neuron else
             "the λ-balanced two-layer linear net (Dominé et al.; lazyrich.theory.lambda_balanced)")

    try:
        spec = from_dict(spec_dict)
    except LazyrichError as exc:
        return {}, f"no theory overlay: the stored spec does not load in this version ({exc})"
    out: dict[str, dict[str, list[float | None]]] = {}
    dtype = getattr(torch, spec.dtype)
    try:
        for (task, seed), rows in members.groupby(["task", "task_seed"], sort=False):
            data = spec.tasks[str(task)].load(int(seed), dtype)
            first = rows.iloc[0]
            net = MLP(widths(spec, first), str(first["activation"]), spec.model.bias)
            opt = spec.optimizer.optimizer(str(first["optimizer"]))
            ens = build(net, rows[BUILD_COLUMNS].reset_index(drop=True), optimizer=opt.family,
                        gamma_lr=spec.parametrization.gamma_lr, init=spec.init.kind,
                        overrides=spec.parametrization.overrides, loss_scale=spec.loss_scale, dtype=dtype)
            for e, member in enumerate(rows.member.to_numpy()):
                rec = records[records.member == member]
                t = rec.groupby("step").time.mean().reindex(steps).to_numpy(float)
                pred = solve(t, **inputs(ens, data, e))
                for o, l, name in names:
                    if "(mean over index)" in name:
                        continue
                    if (o, l) not in pred.values:  # same name and layer as recorded, else no overlay
                        continue
                    arr = np.asarray(pred.values[(o, l)], dtype=float).reshape(len(steps), -1)[:, 0]
                    out.setdefault(name, {})[str(int(member))] = _finite(arr)
    except LazyrichError as exc:
        return {}, f"no theory overlay: {exc}"
    if not out:
        return {}, f"no theory overlay: the solution of {label} predicts none of the recorded observables"
    return out, (f"dashed: the exact gradient-flow solution of {label} at each member's time t = Σ η, "
                 f"for {', '.join(sorted(out))}")


def render(payload: dict[str, Any]) -> str:
    """The page: inlined Plotly, the data as JSON, and a small script that draws and reacts."""
    from plotly.offline import get_plotlyjs

    data = json.dumps(payload, separators=(",", ":"), default=str).replace("</", "<\\/")
    title = html.escape(f"lazyrich view: {payload['run'].get('run_id', '')}")
    return _PAGE.replace("__TITLE__", title).replace("__PLOTLY__", get_plotlyjs()).replace("__DATA__", data)


def write_view(store: str | Path, run: str = "latest", out: str | Path | None = None,
               observables: list[str] | None = None) -> Path:
    """Collect, render and write the page; returns its path (default: next to the store, RUN_ID.html)."""
    payload = collect(store, run, observables)
    path = Path(out) if out is not None else Path(store).parent / f"{payload['run']['run_id']}.html"
    require(not path.is_dir(), f"--out {path} is a folder: give a file name, e.g. {path / 'view.html'}")
    path.write_text(render(payload), encoding="utf-8")
    return path


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
 body{font-family:system-ui,sans-serif;margin:1.2em;color:#222} h1{font-size:1.25em}
 .controls{display:flex;gap:1.2em;flex-wrap:wrap;align-items:center;margin:.6em 0}
 .row{display:flex;gap:1em;flex-wrap:wrap} #heat,#traj{width:620px;height:480px}
 table{border-collapse:collapse;font-size:.85em} td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}
 pre{background:#f6f6f6;padding:.6em;max-height:24em;overflow:auto;font-size:.8em} .note{color:#555;font-size:.9em}
</style>
<script>__PLOTLY__</script></head>
<body>
<h1>__TITLE__</h1>
<div class="controls">
 <label>observable <select id="obs"></select></label>
 <label>x axis <select id="xaxis"></select></label>
 <label>y axis <select id="yaxis"></select></label>
 <label>step <input id="step" type="range" min="0" value="0"> <span id="steplabel"></span></label>
</div>
<div class="row"><div id="heat"></div><div id="traj"></div></div>
<p class="note" id="selection">Click a cell to show its members' trajectories.</p>
<p class="note" id="theorynote"></p>
<h2>Run</h2><table id="runtable"></table>
<h2>Configuration</h2><pre id="config"></pre>
<script id="payload" type="application/json">__DATA__</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("payload").textContent);
const M = D.members, N = M.member.length;
const $ = id => document.getElementById(id);
function fmt(v){ return (typeof v === "number") ? (Number.isInteger(v) ? String(v) : v.toPrecision(3)) : String(v); }
function fill(sel, items, pick){ for (const it of items){ const o=document.createElement("option"); o.value=o.textContent=it; sel.appendChild(o);} if (pick!==undefined) sel.value=pick; }
const axes = D.axes.length ? D.axes : ["member"];
fill($("obs"), D.observables);
fill($("xaxis"), [...axes, "member"], axes[0]);
fill($("yaxis"), [...axes, "member"], axes.length > 1 ? axes[1] : "member");
$("step").max = D.steps.length - 1; $("step").value = D.steps.length - 1;
function uniq(key){ const vals=[...new Set(M[key])]; return vals.sort((a,b)=> (typeof a==="number" && typeof b==="number") ? a-b : String(a)<String(b)?-1:1); }
let cells = {};
function heatmap(){
  const obs=$("obs").value, xk=$("xaxis").value, yk=$("yaxis").value, s=+$("step").value;
  $("steplabel").textContent = "step " + D.steps[s] + (D.time[s]!==null ? " (t = " + fmt(D.time[s]) + ")" : "");
  const xs=uniq(xk), ys=uniq(yk), xi=new Map(xs.map((v,i)=>[v,i])), yi=new Map(ys.map((v,i)=>[v,i]));
  const sum=ys.map(()=>xs.map(()=>0)), cnt=ys.map(()=>xs.map(()=>0)); cells={};
  const row = D.values[obs][s];
  for (let m=0; m<N; m++){
    const i=xi.get(M[xk][m]), j=yi.get(M[yk][m]), key=i+","+j;
    (cells[key] = cells[key] || []).push(m);
    if (row[m]!==null){ sum[j][i]+=row[m]; cnt[j][i]+=1; }
  }
  const z=sum.map((r,j)=>r.map((v,i)=> cnt[j][i] ? v/cnt[j][i] : null));
  const text=ys.map((_,j)=>xs.map((_,i)=> ((cells[i+","+j]||[]).length) + " member(s)"));
  Plotly.react("heat", [{type:"heatmap", z:z, x:xs.map(fmt), y:ys.map(fmt), text:text, colorscale:"Viridis",
    hovertemplate: xk+"=%{x}<br>"+yk+"=%{y}<br>"+obs+"=%{z:.4g}<br>%{text}<extra></extra>", colorbar:{title:{text:obs}}}],
    {title:{text: obs + " at step " + D.steps[s]}, xaxis:{title:{text:xk}, type:"category"}, yaxis:{title:{text:yk}, type:"category"},
     margin:{t:50}}, {responsive:true});
}
function trajectories(key){
  const obs=$("obs").value, xk=$("xaxis").value, yk=$("yaxis").value, ms=(cells[key]||[]).slice(0, 24);
  const traces=[];
  const th = (D.theory||{})[obs] || {};
  ms.forEach((m, k)=>{
    const label = axes.map(a => a+"="+fmt(M[a][m])).join(", ");
    const color = "hsl(" + Math.round(360*k/Math.max(ms.length,1)) + ",65%,45%)";
    traces.push({type:"scatter", mode:"lines+markers", x:D.steps, y:D.values[obs].map(r=>r[m]), name:"member "+M.member[m], line:{color:color}, hovertext:label});
    const t = th[String(M.member[m])];
    if (t) traces.push({type:"scatter", mode:"lines", x:D.steps, y:t, name:"theory, member "+M.member[m], line:{color:color, dash:"dash"}});
  });
  Plotly.react("traj", traces, {title:{text: obs + " of the cell's members"}, xaxis:{title:{text:"step"}}, yaxis:{title:{text:obs}}, margin:{t:50}}, {responsive:true});
  $("selection").textContent = ms.length ? ("showing " + ms.length + " member(s): " + ms.map(m => "#" + M.member[m] + " (" + axes.map(a => a+"="+fmt(M[a][m])).join(", ") + ")").join("; ")) : "no members in that cell";
}
["obs","xaxis","yaxis"].forEach(id => $(id).addEventListener("change", () => { heatmap(); Plotly.purge("traj"); }));
$("step").addEventListener("input", heatmap);
heatmap();
$("heat").on("plotly_click", ev => { const p=ev.points[0]; trajectories(p.pointIndex[1]+","+p.pointIndex[0]); });
$("theorynote").textContent = D.theory_note;
for (const [k,v] of Object.entries(D.run)){ const tr=document.createElement("tr"); tr.innerHTML="<th></th><td></td>"; tr.children[0].textContent=k; tr.children[1].textContent=v; $("runtable").appendChild(tr); }
$("config").textContent = JSON.stringify(D.config, null, 1);
</script></body></html>
"""

"""The review page: one static HTML file (no server, no network) plus a folder of thumbnails.

Data goes into the page as JSON inside ``<script type="application/json">`` with ``<``, ``>``
and ``&`` escaped, and the page builds every element with ``textContent`` and attributes,
never ``innerHTML``, so a file named ``<img src=x onerror=...>.jpg`` is shown as text.  A
Content-Security-Policy forbids any network access.  Charts are inline SVG made here.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import math
import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

from PIL import Image, ImageOps

from ..config import CROP_NCC, HASH_THRESHOLD
from ..errors import UsageError
from ..results import Group, load_results, loosest_kind
from ..sources import read_bytes

__all__ = ["write_report", "THUMB_SIDE"]

THUMB_SIDE = 192
#: the most a pair that is not byte-identical is shown as sure
NEAR_CERTAIN = 0.99
#: room the funnel leaves for its labels, in pixels
LABEL_WIDTH = 330


def _thumb(job: tuple[str, str]) -> str | None:
    """Write a JPEG thumbnail of ``src`` to ``dst`` (reduced-size decode); None or the error."""
    src, dst = job


    try:

        with Image.open(io.BytesIO(read_bytes(src))) as src_im:
            src_im.draft("RGB", (THUMB_SIDE * 2, THUMB_SIDE * 2))
            im: Image.Image = ImageOps.exif_transpose(src_im)
            im.thumbnail((THUMB_SIDE, THUMB_SIDE))
            if im.mode not in ("RGB", "L"):
                rgba = im.convert("RGBA")
                im = Image.new("RGB", rgba.size, (40, 40, 40))
                im.paste(rgba, mask=rgba.getchannel("A"))
            tmp = dst + ".part"
            im.save(tmp, "JPEG", quality=82)
            os.replace(tmp, dst)
        return None
    except Exception as e:  # noqa: BLE001 - a missing or broken file shows as a placeholder, never stops the page
        return f"{type(e).__name__}"


def _jobs(groups: list[dict[str, Any]], folder: Path) -> Iterator[tuple[str, str]]:
    seen: set[str] = set()
    for g in groups:
        for m in g["members"]:
            key = _thumb_name(g, m)
            if key not in seen:
                seen.add(key)
                dst = folder / key
                if not dst.exists():
                    yield m, str(dst)


_HEX = re.compile(r"[0-9a-f]{8,64}")


def _thumb_name(g: dict[str, Any], path: str) -> str:
    """The thumbnail's file name: the content digest when it is one (a results.json is input:
    anything else, like ``../x``, is never used as a name), else a hash of the path."""
    d = (g.get("digests") or {}).get(path)
    if not (isinstance(d, str) and _HEX.fullmatch(d)):
        d = hashlib.blake2b(path.encode(), digest_size=16).hexdigest()
    return f"{d}.jpg"


# -- evidence and scores -------------------------------------------------------------------
def _confidence(p: dict[str, Any], threshold: int, crop_ncc: float) -> float:
    """How sure the pair is, 1 for identical bytes, about 0.5 at each test's acceptance bound:
    the 256-bit distance over twice the threshold, a crop's or local check's correlation
    between its bound and 1; an embedding or 'similar' pair's cosine as it is; never above
    :data:`NEAR_CERTAIN` unless the bytes are the same."""
    st = p.get("stage")
    if st == "exact":
        return 1.0
    if st == "hash" and p.get("distance") is not None:
        conf = 1.0 - p["distance"] / (2.0 * max(threshold, 1))
    else:
        conf = float(p.get("score") or 0.0)
        bound = {"crop": crop_ncc, "local": 0.85, "contains": 0.85}.get(str(st))
        if bound is not None and bound < 1.0:
            conf = 0.5 + 0.5 * (conf - bound) / (1.0 - bound)
    return max(0.0, min(NEAR_CERTAIN, conf))  # only identical bytes are certain


def _size(n: object) -> str:
    if not isinstance(n, int):
        return ""
    for unit, div in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n} B"


def _page_data(res: dict[str, Any], folder_name: str) -> dict[str, Any]:
    stats = res.get("stats", {})
    settings = stats.get("settings", {})
    # results of an older neardup may not say: the defaults then
    threshold = int(settings.get("hash_threshold", HASH_THRESHOLD))
    crop_ncc = float(settings.get("crop_ncc", CROP_NCC))
    groups = []
    for g in res.get("groups", []):
        kind_of = Group.from_dict(g).member_kinds()
        reference = set(g.get("reference") or [])
        via: dict[str, dict[str, Any]] = {}
        for p in g.get("pairs", []):
            via.setdefault(p["b"], p)
            via.setdefault(p["a"], p) if p["a"] != g["keep"] else None
        files = g.get("files") or {}
        members = []
        for m in g["members"]:
            p = via.get(m, {})
            ev = p.get("evidence", {})
            f = files.get(m, {})
            members.append({
                "path": m, "thumb": f"{quote(folder_name)}/{_thumb_name(g, m)}",
                "stage": p.get("stage", "keeper" if m == g["keep"] else ""),
                "distance": p.get("distance"), "score": p.get("score"),
                "cosine": ev.get("cosine"), "colour": ev.get("colour"),
                "container": ev.get("container") == m if p.get("stage") == "contains" else None,
                "confidence": None if m == g["keep"] else round(_confidence(p, threshold, crop_ncc), 4),
                "pixels": f"{f['width']}\u00d7{f['height']}" if "width" in f and "height" in f else "",
                "bytes": _size(f.get("bytes")), "format": f.get("format", ""),
                "kind": kind_of.get(m, "copy"), "reference": m in reference,
            })
        # the group is as sure as its least sure member
        rated = [mm for mm in members if mm["confidence"] is not None]
        weakest = min(rated, key=lambda mm: mm["confidence"], default=None)
        stages = sorted({mm["stage"] for mm in members if mm["stage"] and mm["stage"] != "keeper"})
        groups.append({"keep": g["keep"], "reason": g.get("reason", ""), "members": members,
                       "kind": loosest_kind(mm["kind"] for mm in members),
                       "confidence": weakest["confidence"] if weakest else 1.0,
                       "weakest": weakest["path"] if weakest else "", "stages": stages})
    groups.sort(key=lambda g: (-len(g["members"]), -g["confidence"], g["keep"]))
    return {"groups": groups, "failures": res.get("failures", []), "threshold": threshold, "crop_ncc": crop_ncc}


# -- charts (inline SVG) ---------------------------------------------------------------------
def _bars(title: str, labels: list[str], values: list[int], *, marker: int | None = None, marker_label: str = "",
          width: int = 420, height: int = 150, colour: str = "#6ea8fe") -> str:
    top = max(values, default=0) or 1
    n = max(len(values), 1)
    bw = (width - 40) / n
    out = [f'<svg viewBox="0 0 {width} {height + 40}" width="{width}" height="{height + 40}" role="img" '
           f'aria-label="{html.escape(title)}"><title>{html.escape(title)}</title>',
           f'<text x="4" y="14" class="ct">{html.escape(title)}</text>']
    for i, v in enumerate(values):
        h = (height - 30) * v / top
        x = 30 + i * bw
        out.append(f'<rect x="{x:.1f}" y="{height - h:.1f}" width="{max(bw - 1, 1):.1f}" height="{h:.1f}" '
                   f'fill="{colour}"><title>{html.escape(labels[i])}: {v:,}</title></rect>')
    for i in range(0, n, max(1, n // 6)):
        out.append(f'<text x="{30 + i * bw:.1f}" y="{height + 14}" class="ax">{html.escape(labels[i])}</text>')
    out.append(f'<text x="2" y="{height - (height - 30) + 4}" class="ax">{top:,}</text>')
    if marker is not None:
        x = 30 + marker * bw
        out.append(f'<line x1="{x:.1f}" y1="20" x2="{x:.1f}" y2="{height}" stroke="#ff6b6b" stroke-dasharray="4 3"/>'
                   f'<text x="{x + 4:.1f}" y="30" class="mk">{html.escape(marker_label)}</text>')
    out.append("</svg>")
    return "".join(out)


def _funnel(stats: dict[str, Any], width: int = 600) -> str:
    """Images at each step, each a subset of the one before, with the pair counts beside them."""
    f = stats.get("funnel")
    pairs = stats.get("candidate_pairs", 0) + stats.get("embedding_pairs", 0)
    exact = stats.get("exact_copies", 0)
    if f:
        steps = [("images", f["images"], ""), ("read", f["read"], f"{stats.get('unique_contents', 0):,} distinct"),
                 ("with a candidate", f["with_candidates"], f"{pairs:,} candidate pairs"),
                 ("verified", f["verified"], f"{stats.get('verified_pairs', 0):,} pairs, {exact:,} byte copies"),
                 ("in groups", f["in_groups"], f"{f['groups']:,} groups")]
    else:  # results of an older neardup: its counts as they are
        steps = [("images", stats.get("images", 0), ""), ("distinct contents", stats.get("unique_contents", 0), ""),
                 ("groups", stats.get("groups", 0), "")]
    top = max(v for _, v, _ in steps) or 1
    out = [f'<svg viewBox="0 0 {width} 190" width="{width}" height="190" role="img" aria-label="funnel">'
           '<title>images to groups</title><text x="4" y="14" class="ct">From images to groups</text>']

    for i, (name, v, note) in enumerate(steps):
        bar = width - LABEL_WIDTH
        w = max(4.0, (bar - 10) * math.log1p(v) / math.log1p(top))
        y = 26 + i * 32
        label = f"{v:,} {name}" + (f" ({note})" if note else "")
        out.append(f'<rect x="{(bar - w) / 2:.1f}" y="{y}" width="{w:.1f}" height="24" rx="3" fill="#51cf66" '
                   f'opacity="{1 - i * 0.12:.2f}"/><text x="{bar + 4}" y="{y + 16}" class="fl">'
                   f'{html.escape(label)}</text>')
    out.append("</svg>")
    return "".join(out)


def _charts(res: dict[str, Any], threshold: int) -> str:
    dist = [0] * 17
    cos = [0] * 20
    sizes: dict[int, int] = {}
    for g in res.get("groups", []):
        sizes[len(g["members"])] = sizes.get(len(g["members"]), 0) + 1
        for p in g.get("pairs", []):
            if p.get("distance") is not None and p.get("stage") == "hash":
                dist[min(16, p["distance"] // 4)] += 1
            c = (p.get("evidence") or {}).get("cosine")
            if c is not None and c == c:
                cos[min(19, max(0, int(c * 20)))] += 1
    parts = [_bars("256-bit hash distance of hash-verified pairs", [f"{4 * i}" for i in range(17)], dist,
                   marker=threshold // 4, marker_label=f"threshold {threshold}")]
    if any(cos):
        parts.append(_bars("Embedding cosine of pairs (thorough mode)", [f"{i / 20:.2f}" for i in range(20)], cos,
                           colour="#b197fc"))
    ks = sorted(sizes)
    parts.append(_bars("Group sizes", [str(k) for k in ks], [sizes[k] for k in ks], colour="#ffd43b"))
    parts.append(_funnel(res.get("stats", {})))
    return "".join(f'<figure class="chart">{p}</figure>' for p in parts)


def _json_for_script(obj: object) -> str:
    s = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return (s.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def write_report(results: str | os.PathLike[str], output: str | os.PathLike[str], *, workers: int = 0,
                 progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Write ``output`` (the page) and ``<output stem>_files/`` (thumbnails) from a results.json.

    Returns counts: groups, images, thumbnails made, thumbnails that failed.
    """

    loaded = load_results(results)
    res = loaded.to_dict()
    out = Path(output)
    folder = out.with_name(out.stem + "_files")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create {folder} for the thumbnails: {e.strerror}; choose another -o") from None
    jobs = [(loaded.resolve(src), dst) for src, dst in _jobs(res["groups"], folder)]
    failed = 0
    if jobs:
        n = workers or (os.cpu_count() or 1)
        if n <= 1 or len(jobs) < 64:
            results_iter: Iterator[str | None] = map(_thumb, jobs)
        else:
            pool = ProcessPoolExecutor(n)
            results_iter = pool.map(_thumb, jobs, chunksize=32)
        for err in results_iter:
            failed += err is not None
            if progress:
                progress(1)
        if n > 1 and len(jobs) >= 64:
            pool.shutdown()
    data = _page_data(res, folder.name)
    page = (_TEMPLATE.replace("{{CHARTS}}", _charts(res, data["threshold"]))
            .replace("{{TITLE}}", html.escape(f"neardup review: {Path(results).name}"))
            .replace("{{DATA}}", _json_for_script(data)))
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    return {"groups": len(data["groups"]), "thumbnails": len(jobs) - failed, "thumbnail_failures": failed,
            "images": sum(len(g["members"]) for g in data["groups"])}


_TEMPLATE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self' data: file:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'none'; form-action 'none'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{TITLE}}</title>
<style>
:root{--bg:#17181b;--panel:#212328;--card:#2a2d33;--line:#363a42;--text:#e7e9ee;--dim:#9aa1ad;--keep:#51cf66;--rm:#ff6b6b;--acc:#6ea8fe}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--text);font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header{position:sticky;top:0;z-index:5;background:var(--panel);border-bottom:1px solid var(--line);padding:10px 18px;display:flex;gap:18px;align-items:center;flex-wrap:wrap}
header h1{font-size:16px;margin:0 12px 0 0;font-weight:600;letter-spacing:.2px}
.stat{color:var(--dim)}.stat b{color:var(--text);font-weight:600}
.controls{display:flex;gap:10px;align-items:center;flex-wrap:wrap;margin-left:auto}
select,input,button{background:var(--card);color:var(--text);border:1px solid var(--line);border-radius:6px;padding:5px 9px;font:inherit}
button{cursor:pointer}button:hover{border-color:var(--acc)}button.primary{background:var(--acc);color:#0b1220;border-color:var(--acc);font-weight:600}
main{padding:14px 18px 60px}
.charts{display:flex;gap:14px;flex-wrap:wrap;margin-bottom:14px}
figure.chart{margin:0;background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:8px}
svg .ct{fill:var(--text);font-size:12px;font-weight:600}svg .ax{fill:var(--dim);font-size:10px}svg .mk{fill:#ff6b6b;font-size:10px}svg .fl{fill:var(--text);font-size:11px}
.group{background:var(--panel);border:1px solid var(--line);border-radius:10px;margin:0 0 12px;padding:10px 12px}
.group.focus{border-color:var(--acc);box-shadow:0 0 0 1px var(--acc)}
.ghead{display:flex;gap:12px;align-items:baseline;margin-bottom:8px;color:var(--dim)}.ghead b{color:var(--text)}
.members{display:flex;gap:10px;overflow-x:auto;padding-bottom:4px}
.card{flex:0 0 210px;background:var(--card);border:2px solid transparent;border-radius:8px;padding:8px;outline:none;position:relative}
.card:focus{border-color:var(--acc)}.card.keep{border-color:var(--keep)}.card.remove{opacity:.78}
.card .thumb{width:192px;height:150px;display:flex;align-items:center;justify-content:center;background:#111;border-radius:4px;overflow:hidden}
.card img{max-width:100%;max-height:100%}
.badge{position:absolute;top:12px;left:12px;font-size:11px;font-weight:700;padding:2px 7px;border-radius:10px;letter-spacing:.4px}
.keep .badge{background:var(--keep);color:#0c2410}.reference{border-color:#74c0fc}.reference .badge{background:#74c0fc;color:#05243b}.remove .badge{background:var(--rm);color:#2b0b0b}.notdup .badge{background:#ffd43b;color:#2b2205}
.path{font:12px/1.3 ui-monospace,SFMono-Regular,Menlo,monospace;word-break:break-all;margin:6px 0 4px;max-height:48px;overflow:hidden}
.ev{font-size:12px;color:var(--dim)}.facts{font-size:12px;color:var(--text);margin-bottom:2px}
.legend{color:var(--dim);font-size:12px;margin:-6px 0 10px}.acts{display:flex;gap:6px;margin-top:6px}.acts button{font-size:12px;padding:3px 7px}
.reason{font-size:12px;color:var(--dim);margin-top:6px}
.pager{display:flex;gap:10px;align-items:center;margin:10px 0}
.help{color:var(--dim);font-size:12px}kbd{background:var(--card);border:1px solid var(--line);border-radius:4px;padding:0 4px;font-size:11px}
textarea{width:100%;height:120px;background:var(--card);color:var(--text);border:1px solid var(--line);border-radius:6px;font:12px ui-monospace,monospace}
details{margin-top:16px;color:var(--dim)}
</style></head>
<body>
<header>
 <h1>neardup review</h1>
 <span class="stat"><b id="s-groups"></b> groups</span><span class="stat"><b id="s-dups"></b> to remove</span>
 <span class="stat"><b id="s-flips"></b> decisions</span>
 <div class="controls">
  <label>kind <select id="f-kind"><option value="">all</option></select></label>
  <label>stage <select id="f-stage"><option value="">all</option></select></label>
  <label>confidence &ge; <input id="f-conf" type="number" min="0" max="1" step="0.05" value="0" style="width:70px"></label>
  <input id="f-text" type="search" placeholder="filter paths" style="width:180px">
  <button id="export" class="primary" title="download the decisions as JSON (e)">Export decisions</button>
 </div>
</header>
<main>
 <div class="charts">{{CHARTS}}</div>
 <div class="legend" id="legend"></div>
 <div class="pager"><button id="prev">&larr; prev</button><span id="pageinfo"></span><button id="next">next &rarr;</button>
  <span class="help"><kbd>j</kbd>/<kbd>k</kbd> group, <kbd>h</kbd>/<kbd>l</kbd> picture, <kbd>space</kbd> keep/remove, <kbd>d</kbd> not a duplicate, <kbd>n</kbd>/<kbd>p</kbd> page, <kbd>e</kbd> export</span></div>
 <div id="groups"></div>
 <div class="pager"><button id="prev2">&larr; prev</button><span id="pageinfo2"></span><button id="next2">next &rarr;</button></div>
 <details><summary>Decisions (JSON, for <code>neardup apply --decisions</code>)</summary><textarea id="decisions" readonly></textarea></details>
 <details id="failures"><summary></summary><ul id="faillist"></ul></details>
</main>
<script type="application/json" id="data">{{DATA}}</script>
<script>
"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);
const PAGE = 25;
const flips = new Map();      // path -> "keep" | "remove" (differs from the default)
const notdup = new Map();     // path -> keeper it is not a duplicate of
let page = 0, focusG = 0, view = DATA.groups;
const $ = id => document.getElementById(id);
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  for (const c of kids) if (c) e.appendChild(c);
  return e;
}
function state(g, m) {
  if (m.reference) return "reference";  // never acted on: apply refuses it whatever is decided
  if (notdup.has(m.path)) return "notdup";
  const f = flips.get(m.path);
  if (f) return f;
  return m.path === g.keep ? "keep" : "remove";
}
function setState(g, m, s) {
  const def = m.path === g.keep ? "keep" : "remove";
  if (s === "notdup") { notdup.set(m.path, g.keep); flips.delete(m.path); }
  else { notdup.delete(m.path); if (s === def) flips.delete(m.path); else flips.set(m.path, s); }
  // never every copy: if nothing in the group is kept, the keeper is kept
  if (g.members.every(x => state(g, x) === "remove")) flips.delete(g.keep);
  render(); updateExport();
}
const STAGE_TEXT = {exact: "byte-identical", hash: "hash match", crop: "crop of the keeper",
  embedding: "CNN embedding + hashes", local: "local features", similar: "similar shot",
  contains: "one shows the other inside a larger frame"};
const KIND_TEXT = {copy: "copy", contains: "contains / contained", similar: "another shot"};
const KEEP_OF = new Map(); DATA.groups.forEach(g => g.members.forEach(m => KEEP_OF.set(m, g.keep)));
function g_keep_of(m) { return KEEP_OF.get(m); }
function evidence(m) {
  const bits = [];
  if (m.kind && m.kind !== "copy" && m.path !== g_keep_of(m)) bits.push(KIND_TEXT[m.kind] || m.kind);
  if (m.stage && m.stage !== "keeper") bits.push(STAGE_TEXT[m.stage] || m.stage);
  if (m.container === true) bits.push("this file is the container");
  if (m.container === false) bits.push("shown inside the other");
  if (m.distance !== null && m.distance !== undefined) bits.push("d=" + m.distance);
  if (m.score !== null && m.score !== undefined) bits.push("score " + Number(m.score).toFixed(3));
  if (m.cosine !== null && m.cosine !== undefined && m.stage !== "embedding") bits.push("cos " + Number(m.cosine).toFixed(3));
  if (m.confidence !== null && m.confidence !== undefined) bits.push("conf " + Number(m.confidence).toFixed(2));
  return bits.join(" \u00b7 ");
}
function evidenceTitle(m) {
  const t = [];
  if (m.distance !== null && m.distance !== undefined) t.push(`d=${m.distance}: 256-bit hash distance to the keeper, accepted up to ${DATA.threshold} (0 = same picture)`);
  if (m.stage === "crop") t.push(`score: layout correlation as a crop of the keeper, accepted from ${DATA.crop_ncc}`);
  if (m.stage === "local") t.push("score: worst tile correlation after aligning local features, accepted from 0.85");
  if (m.cosine !== null && m.cosine !== undefined) t.push("cos: cosine of the CNN embeddings");
  if (m.confidence !== null && m.confidence !== undefined) t.push("conf: 1 for identical bytes, about 0.5 at the acceptance bound");
  return t.join("\n");
}
function facts(m) {
  return [m.pixels, m.bytes, m.format].filter(x => x).join(" \u00b7 ");
}
function applyFilters() {
  const stg = $("f-stage").value, conf = parseFloat($("f-conf").value) || 0, t = $("f-text").value.toLowerCase();
  const knd = $("f-kind").value;
  view = DATA.groups.filter(g => (!stg || g.stages.includes(stg)) && (!knd || g.kind === knd) && g.confidence >= conf &&
    (!t || g.members.some(m => m.path.toLowerCase().includes(t))));
  page = 0; focusG = 0; render();
}
function render() {
  const root = $("groups");
  root.replaceChildren();
  const pages = Math.max(1, Math.ceil(view.length / PAGE));
  page = Math.min(page, pages - 1);
  for (const id of ["pageinfo", "pageinfo2"]) $(id).textContent = `page ${page + 1} of ${pages} (${view.length} groups)`;
  const slice = view.slice(page * PAGE, page * PAGE + PAGE);
  slice.forEach((g, gi) => {
    const box = el("section", {class: "group" + (gi === focusG ? " focus" : ""), "data-group": String(page * PAGE + gi)});
    const weakest = g.weakest ? g.weakest.split("/").pop() : "";
    box.appendChild(el("div", {class: "ghead"}, el("b", {text: `${g.members.length} copies`}),
      el("span", {text: `confidence ${g.confidence.toFixed(2)}` + (weakest ? ` (lowest: ${weakest})` : ""),
                  title: "the group's least sure member; each card shows its own"}),
      el("span", {text: g.stages.map(x => STAGE_TEXT[x] || x).join(", ")})));
    const row = el("div", {class: "members"});
    g.members.forEach(m => {
      const s = state(g, m);
      const card = el("div", {class: "card " + s, tabindex: "0", "data-path": m.path, "data-state": s});
      card.appendChild(el("span", {class: "badge", text: s === "notdup" ? "NOT A DUP" : s === "reference" ? (m.path === g.keep ? "KEEP \u00b7 REFERENCE" : "REFERENCE") : s.toUpperCase(),
                                   title: s === "reference" ? "under a --reference root: always kept, never acted on" : ""}));
      const th = el("div", {class: "thumb"});
      const img = el("img", {alt: m.path, loading: "lazy", src: m.thumb});
      img.addEventListener("error", () => { img.remove(); th.textContent = "no preview"; });
      th.appendChild(img);
      card.appendChild(th);
      card.appendChild(el("div", {class: "path", text: m.path, title: m.path}));
      card.appendChild(el("div", {class: "facts", text: facts(m), title: "pixels \u00b7 file size \u00b7 format"}));
      card.appendChild(el("div", {class: "ev", text: evidence(m), title: evidenceTitle(m)}));
      const acts = el("div", {class: "acts"});
      if (m.reference) { card.appendChild(acts); row.appendChild(card); return; }
      const flip = el("button", {text: s === "keep" ? "remove" : "keep", "data-act": "flip"});
      flip.addEventListener("click", () => setState(g, m, state(g, m) === "keep" ? "remove" : "keep"));
      acts.appendChild(flip);
      if (m.path !== g.keep) {
        const nd = el("button", {text: s === "notdup" ? "undo" : "not a duplicate", "data-act": "notdup"});
        nd.addEventListener("click", () => setState(g, m, state(g, m) === "notdup" ? "remove" : "notdup"));
        acts.appendChild(nd);
      }
      card.appendChild(acts);
      card.addEventListener("keydown", ev => {
        if (ev.key === " " || ev.key === "Enter") { ev.preventDefault(); setState(g, m, state(g, m) === "keep" ? "remove" : "keep"); refocus(m.path); }
        if (ev.key === "d" && m.path !== g.keep) { setState(g, m, state(g, m) === "notdup" ? "remove" : "notdup"); refocus(m.path); }
      });
      row.appendChild(card);
    });
    box.appendChild(row);
    box.appendChild(el("div", {class: "reason", text: "keeper: " + g.reason}));
    root.appendChild(box);
  });
  $("s-groups").textContent = String(DATA.groups.length);
  let rm = 0;
  for (const g of DATA.groups) for (const m of g.members) if (state(g, m) === "remove") rm++;
  $("s-dups").textContent = String(rm);
  $("s-flips").textContent = String(flips.size + notdup.size);
}
function refocus(path) {
  for (const c of document.querySelectorAll(".card")) if (c.dataset.path === path) { c.focus(); return; }
}
function decisions() {
  const keep = [], remove = [];
  for (const [p, s] of flips) (s === "keep" ? keep : remove).push(p);
  return {format: "neardup-decisions/1", keep: keep.sort(), remove: remove.sort(),
          not_duplicates: [...notdup].map(([p, k]) => [k, p]).sort()};
}
function updateExport() { $("decisions").value = JSON.stringify(decisions(), null, 1); }
function exportDecisions() {
  const blob = new Blob([JSON.stringify(decisions(), null, 1)], {type: "application/json"});
  const a = el("a", {href: URL.createObjectURL(blob), download: "decisions.json"});
  document.body.appendChild(a); a.click(); a.remove();
}
function go(p) { page = Math.max(0, Math.min(p, Math.ceil(view.length / PAGE) - 1)); focusG = 0; render(); window.scrollTo(0, 0); }
function focusGroup(i) {
  const n = Math.min(PAGE, view.length - page * PAGE);
  if (i >= n) { if ((page + 1) * PAGE < view.length) { go(page + 1); } return; }
  if (i < 0) { if (page > 0) { go(page - 1); focusG = PAGE - 1; render(); } return; }
  focusG = i; render();
  const box = document.querySelector(`.group.focus`);
  if (box) { box.scrollIntoView({block: "nearest"}); const c = box.querySelector(".card"); if (c) c.focus(); }
}
document.addEventListener("keydown", ev => {
  if (ev.target.tagName === "INPUT" || ev.target.tagName === "SELECT" || ev.target.tagName === "TEXTAREA") return;
  if (ev.key === "j") focusGroup(focusG + 1);
  else if (ev.key === "k") focusGroup(focusG - 1);
  else if (ev.key === "n") go(page + 1);
  else if (ev.key === "p") go(page - 1);
  else if (ev.key === "e") exportDecisions();
  else if (ev.key === "l" || ev.key === "h") {
    const cards = [...document.querySelectorAll(".group.focus .card")];
    const i = cards.indexOf(document.activeElement);
    const nxt = cards[Math.max(0, Math.min(cards.length - 1, i + (ev.key === "l" ? 1 : -1)))];
    if (nxt) nxt.focus();
  }
});
const kinds = new Set(DATA.groups.map(g => g.kind));
for (const k of ["copy", "contains", "similar"]) if (kinds.has(k)) $("f-kind").appendChild(el("option", {value: k, text: k}));
$("f-kind").addEventListener("change", applyFilters);
const stages = new Set(); DATA.groups.forEach(g => g.stages.forEach(s => stages.add(s)));
for (const s of [...stages].sort()) $("f-stage").appendChild(el("option", {value: s, text: s}));
$("f-stage").addEventListener("change", applyFilters);
$("f-conf").addEventListener("input", applyFilters);
$("f-text").addEventListener("input", applyFilters);
$("export").addEventListener("click", exportDecisions);
for (const [id, d] of [["prev", -1], ["next", 1], ["prev2", -1], ["next2", 1]]) $(id).addEventListener("click", () => go(page + d));
$("failures").querySelector("summary").textContent = `${DATA.failures.length} file(s) could not be read or decoded`;
for (const f of DATA.failures.slice(0, 1000)) $("faillist").appendChild(el("li", {text: `${f.path}: ${f.reason} (${f.error})`}));
$("legend").textContent = `d = 256-bit hash distance to the keeper (accepted up to ${DATA.threshold}; 0 = same picture) \u00b7 ` +
  `score = layout correlation of a crop (from ${DATA.crop_ncc}) or of aligned local features (from 0.85) \u00b7 ` +
  "cos = CNN embedding cosine \u00b7 conf = 1 for identical bytes, about 0.5 at a test's bound \u00b7 each card: pixels \u00b7 file size \u00b7 format";
render(); updateExport();
</script>
</body></html>
"""

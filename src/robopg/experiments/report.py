"""``robopg report``: one self-contained HTML page — the results table, the figures (inline PNG), the
configuration of each arm, every run's status, and a video of the best run (inline MP4). It makes no
network request when viewed: no scripts, fonts or styles from elsewhere.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import sys
import tempfile
from pathlib import Path

from ..config import Config
from . import sweep as sweep_mod
from .compare import Comparison, shown

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #1d1d1f; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.meta { color: #555; margin-top: 0; } code, pre { font: 13px/1.35 ui-monospace, Menlo, Consolas, monospace; }
table { border-collapse: collapse; margin: 0.6em 0; } th, td { border: 1px solid #ccc; padding: 4px 9px; }
th { background: #f3f3f5; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.differs td { background: #fff7dc; } .status-partial, .status-no-metrics, .status-missing { color: #b4370a;
font-weight: 600; } img { max-width: 100%; border: 1px solid #eee; } .notes li { color: #b4370a; }
.small { font-size: 0.9em; color: #444; } video { max-width: 100%; background: #000; }
"""


def _table(rows: list[list[str]], table_id: str, numeric_from: int = 2, row_classes: list[str] | None = None) -> str:
    out = [f'<table id="{table_id}">', "<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in rows[0]) + "</tr>"]
    for i, r in enumerate(rows[1:]):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        cells = "".join(f'<td class="num">{html.escape(c)}</td>' if j >= numeric_from else f"<td>{html.escape(c)}</td>"
                        for j, c in enumerate(r))
        out.append(f"<tr{cls}>{cells}</tr>")
    return "\n".join(out + ["</table>"])


def _png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _frame_png(frame) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG")
    return buf.getvalue()


def configs_section(cmp: Comparison) -> str:
    arms = [a for a in cmp.arms if a.runs]
    if not arms:
        return "<p>No arm has a run yet.</p>"
    keys = list(arms[0].config)
    rows = [["setting"] + [a.label for a in arms]]
    classes = []
    for k in keys:
        values = [_show(a.config.get(k)) for a in arms]
        if k == "batch_mode":  # 'auto' hides a real difference between arms: say what it became
            values = [v if v != "auto" else f"auto: {Config.from_dict(a.runs[0].config).resolved_batch_mode()}"
                      for v, a in zip(values, arms)]
        rows.append([k] + values)
        classes.append("differs" if len(set(values)) > 1 else "")
    seeds = ", ".join(f"{a.label}: " + " ".join(str(r.seed) for r in a.runs) for a in arms)
    return (f'<p class="small">Every run of an arm has these settings; only the seed differs ({html.escape(seeds)}). '
            f"Highlighted rows differ between arms. Each run's own <code>config.yaml</code> reproduces it.</p>\n"
            + _table(rows, "configs-table", numeric_from=99, row_classes=classes))


def _show(v) -> str:
    return " ".join(map(str, v)) if isinstance(v, list) else str(v)


def runs_section(cmp: Comparison) -> str:
    thr = cmp.threshold
    rows = [["arm", "seed", "status", "env steps", "final return", "AUC",
             "steps to threshold" if thr is None else f"steps to {thr:g}", "wall s", "folder"]]
    classes = []
    for a in cmp.arms:
        for r in a.runs:
            usable = r.usable
            reach = "—"
            if usable and thr is not None:
                s = r.steps_to(thr, cmp.smooth)
                reach = "not reached" if s is None else f"{s:,}"
            status = r.status + ("" if r in a.included or r.status == "no-metrics" else " (excluded)")
            rows.append([a.label, str(r.seed), status + (f": {r.note}" if r.note else ""),
                         f"{r.last_steps:,} / {r.budget:,}", f"{r.final_return():,.1f}" if usable else "—",
                         f"{r.auc():,.1f}" if usable else "—", reach, f"{r.last_wall:,.0f}" if usable else "—",
                         shown(r.path)])
            classes.append(f"status-{r.status}")
        for e in a.missing:
            rows.append([a.label, str(e.seed), "missing: not started", "—", "—", "—", "—", "—", shown(e.path)])
            classes.append("status-missing")
    return _table(rows, "runs-table", numeric_from=3, row_classes=classes)


def video_section(cmp: Comparison, video: bool, seconds: float, width: int, height: int) -> tuple[str, str | None]:
    """The section's HTML, and a warning when there is no video."""
    best = None
    for a in cmp.arms:
        r = a.best_run()
        if r is not None and (best is None or (r.final_return(), r.auc()) > (best[1].final_return(), best[1].auc())):
            best = (a, r)
    if best is None:
        return "<p>No video: no arm has a complete run.</p>", "no video: no complete run"
    arm, run = best
    head = (f"<p>The best run by final return (ties: by AUC): <b>{html.escape(arm.label)}</b>, seed {run.seed} "
            f"(final return {run.final_return():,.1f}, AUC {run.auc():,.1f}), its final policy acting "
            f"deterministically.")
    if not video:
        return head + " Video left out (--no-video).</p>", None
    from ..config import ConfigError
    from ..errors import CheckpointError, RenderError
    from .video import make_video

    with tempfile.TemporaryDirectory() as tmp:
        try:
            v = make_video(run.path, Path(tmp) / "best.mp4", episodes=1, width=width, height=height,
                           max_seconds=seconds)
        except (RenderError, CheckpointError, ConfigError) as e:
            return head + f"</p><p><b>No video</b>: {html.escape(str(e))}</p>", f"no video: {e}"
        data = base64.b64encode(v.path.read_bytes()).decode()
    poster = _png_data_uri(_frame_png(v.poster))
    shown = (v.frames - 1) / v.fps  # the first frame is the reset state
    span = (f"the whole episode ({shown:.1f} s: it ended there)" if shown < seconds - 1.5 / v.fps
            else f"its first {shown:.0f} s")
    return (head + f" One episode from a fixed seed, {span}; return over those steps {v.returns[0]:,.1f}.</p>\n"
            f'<video id="best-video" controls loop muted autoplay playsinline width="{v.width}" height="{v.height}" '
            f'poster="{poster}" src="data:video/mp4;base64,{data}"></video>'), None


def robustness_section(cmp: Comparison) -> str:
    """Each arm's robustness map (``robopg robustness``, averaged over its runs that have one), side by side on
    one figure; empty when no run has a map."""
    import json

    maps = {}
    for a in cmp.arms:
        docs = [json.loads(p.read_text()) for r in a.runs
                if (p := Path(r.path) / "robustness" / "robustness.json").is_file()]
        docs = [d for d in docs if d["grid"] == (docs[0]["grid"] if docs else None)]
        if docs:
            maps[a.label] = docs
    if not maps:
        return ""
    import matplotlib.pyplot as plt

    from ..robustness import mean_map, plot_maps

    rows = [["arm", "runs", "nominal return", "worst cell", "grid mean"]]
    for label, docs in maps.items():
        rows.append([label, str(len(docs))] + [f"{sum(d[k] for d in docs) / len(docs):,.1f}"
                                               for k in ("nominal_return", "worst_return", "grid_mean")])
    fig = plot_maps({f"{label} (mean of {len(docs)} runs)": mean_map(docs) for label, docs in maps.items()})
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return (f'<section id="robustness"><h2>Robustness maps</h2>\n{_table(rows, "robustness-table")}\n'
            f'<img id="maps" alt="robustness maps" src="{_png_data_uri(buf.getvalue())}">\n<p class="small">Mean '
            'return of the deterministic policy on each cell of physics scale factors (robopg robustness), averaged '
            'over each arm\'s runs; the star is the nominal robot.</p></section>')


def build(cmp: Comparison, video: bool = True, video_seconds: float = 10.0, video_size: int = 320) -> str:
    """The report page as a string."""
    figure = _png_data_uri(cmp.figure_png())
    table = _table(cmp.table_rows(), "results-table")
    notes = cmp.notes()
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    notes_html = f'<ul class="notes">{notes_html}</ul>' if notes else ""
    video_html, video_warning = video_section(cmp, video, video_seconds, video_size, video_size)
    if video_warning:
        print(f"robopg report: {video_warning}", file=sys.stderr)
    sources = []
    for src in cmp.sources:
        if sweep_mod.is_sweep(src):
            s = sweep_mod.load(src)
            sources.append(f"sweep <code>{html.escape(str(src))}</code> (created {html.escape(s.created)}"
                           + (f"; <code>{html.escape(s.command)}</code>" if s.command else "") + ")")
        else:
            sources.append(f"<code>{html.escape(str(src))}</code>")
    n_seeds = max((len(a.runs) + len(a.missing) for a in cmp.arms), default=0)
    title = f"{cmp.env_id}: " + " vs ".join(a.label for a in cmp.arms)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="meta">{len(cmp.arms)} arms, up to {n_seeds} seeds each. From {"; ".join(sources)}.
Made by robopg on {_dt.datetime.now().strftime("%Y-%m-%d %H:%M")}.</p>
<section id="results"><h2>Results</h2>
{table}
{notes_html}
<p class="small">{html.escape(cmp.definitions())}</p>
</section>
<section id="figures"><h2>Learning curves</h2>
<img id="curves" alt="learning curves and final-return intervals of {html.escape(cmp.env_id)}" src="{figure}">
<p class="small">Left: mean over seeds of each arm's return (trailing mean of {cmp.smooth} iterations) with a 95%
bootstrap band over seeds; runs are interpolated onto a common grid and never extrapolated, so a curve ends
where its shortest run ends; partial runs left out of the statistics are dotted. Middle: the same against
wall-clock time. Right: IQM of the final return with its 95% stratified-bootstrap interval.</p>
</section>
{robustness_section(cmp)}
<section id="video"><h2>Video</h2>
{video_html}
</section>
<section id="configs"><h2>Configuration of each arm</h2>
{configs_section(cmp)}
</section>
<section id="runs"><h2>Runs</h2>
{runs_section(cmp)}
</section>
</body></html>
"""


def write(cmp: Comparison, out: Path, **kw) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build(cmp, **kw))
    return out

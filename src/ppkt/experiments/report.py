"""A self-contained HTML report of a demo or effectiveness run: one file, no links out.

The table, the explanation, the results plot, the pretraining loss curve and the pictures, each
image embedded as a base64 PNG, so the file can be mailed or attached to an issue as it is.

    python -m ppkt.experiments.report runs/effectiveness          # writes runs/effectiveness/report.html
"""

from __future__ import annotations

import argparse
import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path

from ppkt.experiments.results import RunRecord, read_results
from ppkt.utils.io import atomic_write_text
from ppkt.viz.figures import read_metrics, training_curves_figure
from ppkt.viz.panels import save_png

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #bbb; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #eee; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9em; }
p.explanation { white-space: pre-line; }
"""


def markdown_table_html(table: str) -> str:
    """A Markdown pipe table (header, separator, rows) as an HTML ``<table>``; other lines as paragraphs."""
    rows = [line.strip() for line in table.strip().splitlines()]
    out, header_done, in_table = [], False, False
    for line in rows:
        if not line.startswith("|"):
            if in_table:
                out.append("</table>")
                in_table, header_done = False, False
            if line:
                out.append(f"<p>{html.escape(line)}</p>")
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if all(set(c) <= set("-: ") for c in cells):
            continue  # the separator row
        if not in_table:
            out.append("<table>")
            in_table = True
        tag = "td" if header_done else "th"
        out.append("<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>")
        header_done = True
    if in_table:
        out.append("</table>")
    return "\n".join(out)


def png_data_uri(path: str | Path) -> str:
    """``data:image/png;base64,...`` of a PNG file (refuses anything that is not a PNG)."""
    data = Path(path).read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError(f"{path}: not a PNG file")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


PICTURE_CAPTIONS = {
    "results.png": "Validation mIoU against the label budget; error bars: standard deviation over seeds.",
    "pretrain_loss.png": "Pretraining loss (pixel-to-point InfoNCE) against the step.",
    "features.png": "What pretraining learned: matching colours mean matching features (one PCA of the "
    "teacher's pixel and the student's point embeddings).",
    "backbone_features.png": "The 3D backbone's features next to the image network's, at pixel resolution "
    "(each with its own PCA: compare which regions share a colour, not the colours).",
    "similarity.png": "Cosine similarity of one point's embedding (red) to every pixel and every point.",
    "segmentation_scratch_vs_ppkt.png": "Predictions on a validation room: from scratch (top) and from "
    "PPKT (bottom), each beside the ground truth.",
}


def write_html_report(
    path: str | Path,
    *,
    title: str,
    table: str,
    metric: str = "",
    runs: Sequence[RunRecord] = (),
    explanation: str = "",
    pictures: Sequence[Path] = (),
) -> Path:
    """Write the report: ``metric`` (what the figures are), ``table`` (Markdown), ``explanation``
    (plain text), the results plot and pretraining loss curve found in the run folder, every PNG of
    ``pictures`` and a table of ``runs``."""
    out = Path(path)
    folder = out.parent
    images = []
    for candidate in (folder / "results.png", _loss_curve(folder)):
        if candidate is not None and candidate.is_file():
            images.append(candidate)
    images += [Path(p) for p in pictures if str(p).endswith(".png")]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{html.escape(metric)}</p>",
        markdown_table_html(table),
    ]
    if explanation:
        parts.append(f'<p class="explanation">{html.escape(explanation)}</p>')
    for image in images:
        caption = PICTURE_CAPTIONS.get(image.name, image.stem.replace("_", " "))
        parts.append(
            f'<figure><img alt="{html.escape(image.name)}" src="{png_data_uri(image)}">'
            f"<figcaption>{html.escape(image.name)}: {html.escape(caption)}</figcaption></figure>"
        )
    if runs:
        parts.append("<h2>Every run</h2>")
        parts.append(markdown_table_html(_runs_table(runs)))
    parts.append("</body></html>")
    atomic_write_text(out, "\n".join(parts) + "\n")
    return out


def _runs_table(runs: Sequence[RunRecord]) -> str:
    lines = [
        "| run | mode | labels | seed | init | backbone lr | mIoU | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lr = "" if r.lr_backbone is None else f"{r.lr_backbone:g}"
        miou = "diverged" if r.diverged else f"{100 * r.miou:.1f}"
        reused = " (reused)" if r.reused else ""
        lines.append(
            f"| {Path(r.run_dir).name} | {r.mode} | {r.budget.text} | {r.seed} | {r.init} | {lr} "
            f"| {miou} | {r.seconds:.0f}{reused} |"
        )
    return "\n".join(lines)


def _loss_curve(folder: Path) -> Path | None:
    """``pictures/pretrain_loss.png`` drawn from the pretraining run's metrics (None without them
    or without matplotlib)."""
    metrics = folder / "pretrain" / "metrics.jsonl"
    if not metrics.is_file():
        return None
    try:
        picture = training_curves_figure(read_metrics(metrics), ["loss"], title="PPKT pretraining")
    except (ImportError, ValueError):
        return None
    return save_png(folder / "pictures" / "pretrain_loss.png", picture)


def effectiveness_report(out: str | Path) -> Path:
    """``<out>/report.html`` of a finished effectiveness run (its ``results.json``, ``results.md``,
    ``results.png`` and any ``pictures/*.png``). The objective axis's results have no table of runs."""
    out = Path(out)
    results_path = out / "results.json"
    if not results_path.is_file():
        raise FileNotFoundError(f"{results_path}: no results; is {out} a finished effectiveness run?")
    data = json.loads(results_path.read_text())
    if any("objective" in r for r in data.get("rows", [])):
        metric, runs = data.get("metric", ""), ()
    else:
        results = read_results(results_path)
        metric, runs = results.metric, results.runs
    pictures = sorted((out / "pictures").glob("*.png")) if (out / "pictures").is_dir() else []
    pictures = [p for p in pictures if p.name != "pretrain_loss.png"]
    return write_html_report(
        out / "report.html",
        title=f"ppkt effectiveness: {out}",
        table=(out / "results.md").read_text(),
        metric=metric,
        runs=runs,
        pictures=pictures,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ppkt.experiments.report",
        description="write RUN/report.html: a self-contained HTML report of an effectiveness or demo run",
    )
    parser.add_argument("run", type=Path, help="the run folder (holds results.json)")
    args = parser.parse_args(argv)
    try:
        print(f"wrote {effectiveness_report(args.run)}")
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"ppkt report: {err}") from err
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["effectiveness_report", "markdown_table_html", "png_data_uri", "write_html_report"]

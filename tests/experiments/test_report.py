import base64
import io
import json
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from ppkt.eval.splits import LabelBudget
from ppkt.experiments.demo import demo_table
from ppkt.experiments.report import effectiveness_report, markdown_table_html, write_html_report
from ppkt.experiments.results import EffectivenessRow, InitFigures, RunRecord
from ppkt.viz.panels import save_png


class _Page(HTMLParser):
    """Table cells (per table) and image sources of an HTML page."""

    def __init__(self):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.images: list[str] = []
        self._cell: list[str] | None = None
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(attrs["src"])
        elif tag in ("a", "link", "script"):
            self.links.append(attrs.get("href") or attrs.get("src") or "")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _row():
    return EffectivenessRow(
        "finetune",
        LabelBudget("points", 20),
        InitFigures(13.04, 0.5, 20.0, 1.0, 2),
        InitFigures(15.61, 0.7, 22.0, 1.0, 2),
    )


def _picture(path, color):
    return save_png(path, np.full((20, 30, 3), color, dtype=np.uint8))


def _decode(src: str) -> Image.Image:
    assert src.startswith("data:image/png;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
    image.load()
    assert image.format == "PNG"
    return image


def test_the_report_is_one_file_with_the_run_s_table_and_every_picture_embedded(tmp_path):
    _picture(tmp_path / "results.png", (0, 0, 255))
    pictures = [
        _picture(tmp_path / "pictures" / f"{name}.png", c)
        for name, c in (("features", 10), ("similarity", 200))
    ]
    (tmp_path / "pictures" / "features.ply").write_text("ply")  # not a picture: left out
    run = RunRecord(
        "scratch", "finetune", LabelBudget("points", 20), 0, 0.1304, 0.2, 0.5, 12.0, "runs/finetune-scratch",
        0.01, reused=True,
    )  # fmt: skip
    out = write_html_report(
        tmp_path / "report.html",
        title="demo",
        table=demo_table([_row()], smoke=False),
        metric="validation mIoU",
        runs=[run],
        explanation="what it means",
        pictures=[*pictures, tmp_path / "pictures" / "features.ply"],
    )
    page = _Page()
    page.feed(out.read_text())
    assert page.links == []  # nothing outside the file
    header, values = page.tables[0]
    assert header == ["labels", "from scratch (mIoU %)", "PPKT pretrained (mIoU %)", "gain", "seeds"]
    row = _row()
    assert values == [
        "20 pts/scene",
        f"{row.scratch.miou:.1f} ± {row.scratch.miou_std:.1f}",
        f"{row.ppkt.miou:.1f} ± {row.ppkt.miou_std:.1f}",
        f"{row.gain_miou:+.1f}",
        "2 seeds",
    ]
    assert page.tables[1][1][2:4] == ["points:20", "0"]
    assert page.tables[1][1][-2:] == ["13.0", "12 (reused)"]
    assert len(page.images) == 3  # results plot and both pictures
    colors = [tuple(np.asarray(_decode(src))[0, 0]) for src in page.images]
    assert colors == [(0, 0, 255), (10, 10, 10), (200, 200, 200)]


def test_effectiveness_report_from_a_finished_run_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="results.json"):
        effectiveness_report(tmp_path)
    (tmp_path / "results.json").write_text(
        json.dumps({"rows": [_row().to_json()], "runs": [], "metric": "m"})
    )
    (tmp_path / "results.md").write_text("| a | b |\n|---|---|\n| 1.5 | 2 |\n")
    _picture(tmp_path / "results.png", (1, 2, 3))
    page = _Page()
    page.feed(effectiveness_report(tmp_path).read_text())
    assert page.tables[0] == [["a", "b"], ["1.5", "2"]]
    assert [tuple(np.asarray(_decode(src))[0, 0]) for src in page.images] == [(1, 2, 3)]


def test_markdown_tables_become_html_and_text_is_escaped():
    html = markdown_table_html("| a<b | c |\n|---|---|\n| 1 | 2 |\nnote & more")
    assert "<th>a&lt;b</th>" in html and "<td>2</td>" in html and "<p>note &amp; more</p>" in html


def test_report_command_names_a_folder_without_results(tmp_path, capsys):
    from ppkt.experiments.report import main

    with pytest.raises(SystemExit, match="no results"):
        main([str(tmp_path)])
    (tmp_path / "results.json").write_text(json.dumps({"rows": [], "runs": []}))
    (tmp_path / "results.md").write_text("| a |\n|---|\n| 1 |\n")
    assert main([str(tmp_path)]) == 0
    assert f"wrote {tmp_path / 'report.html'}" in capsys.readouterr().out

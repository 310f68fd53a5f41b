"""The typed rows read the ``results.json`` files committed under ``benchmarks/results/``, old
layouts included, and write the layout they were read from."""

import json
import math
import shutil
from pathlib import Path

import pytest

from ppkt.eval.splits import LabelBudget
from ppkt.experiments.effectiveness import results_markdown
from ppkt.experiments.objectives import ObjectiveRow, objectives_markdown
from ppkt.experiments.report import effectiveness_report
from ppkt.experiments.results import EffectivenessRow, InitFigures, RunRecord, read_results

RESULTS = Path(__file__).parents[2] / "benchmarks" / "results"
EFFECTIVENESS = sorted(p.parent.name for p in RESULTS.glob("effectiveness*/results.json"))
OBJECTIVES = sorted(p.parent.name for p in RESULTS.glob("objectives*/results.json"))


def test_the_committed_results_are_there():
    assert "effectiveness" in EFFECTIVENESS and len(EFFECTIVENESS) >= 4 and len(OBJECTIVES) >= 2


@pytest.mark.parametrize("name", EFFECTIVENESS)
def test_committed_effectiveness_results_read_and_give_their_table(name):
    folder = RESULTS / name
    results = read_results(folder / "results.json")
    saved = json.loads((folder / "results.json").read_text())
    assert len(results.rows) == len(saved["rows"]) and len(results.runs) == len(saved["runs"])
    assert all(isinstance(r.budget, LabelBudget) for r in (*results.rows, *results.runs))
    assert [r.budget.text for r in results.rows] == [r["budget"] for r in saved["rows"]]
    for row, raw in zip(results.rows, saved["rows"], strict=True):
        assert row.scratch.miou == raw["scratch_miou"] and row.ppkt.seeds == raw["ppkt_seeds"]
        assert row.gain_miou == pytest.approx(raw["gain_miou"]) and row.label == raw["label"]
    table = results_markdown(results.rows)
    committed = (folder / "results.md").read_text()
    if name == "effectiveness-400-steps":  # written before the table had a learning-rate column
        table = "\n".join(line.rsplit("|", 2)[0] + "|" for line in table.splitlines()) + "\n"
    assert table == committed


@pytest.mark.parametrize("name", ["effectiveness", "effectiveness-heldout-rates"])
def test_rows_of_the_current_layout_are_written_back_unchanged(name):
    saved = json.loads((RESULTS / name / "results.json").read_text())
    rows = [EffectivenessRow.from_json(r).to_json() for r in saved["rows"]]
    assert json.dumps(rows) == json.dumps(saved["rows"])  # key order too; NaN as written
    runs = [RunRecord.from_json(r).to_json() for r in saved["runs"]]
    kept = [{k: r[k] for k in raw} for r, raw in zip(runs, saved["runs"], strict=True)]
    assert json.dumps(kept) == json.dumps(saved["runs"])  # the keys added since take their defaults
    assert all(r["reused"] is False for r in runs)


def test_an_old_row_without_ppkt_s_own_rate_reads_scratch_s():
    saved = json.loads((RESULTS / "effectiveness-2000-steps" / "results.json").read_text())
    raw = next(r for r in saved["rows"] if r["mode"] == "finetune")
    assert "ppkt_lr_backbone" not in raw
    row = EffectivenessRow.from_json(raw)
    assert row.ppkt_lr_backbone == row.lr_backbone == raw["lr_backbone"]


@pytest.mark.parametrize("name", OBJECTIVES)
def test_committed_objective_rows_round_trip_and_give_their_table(name):
    saved = json.loads((RESULTS / name / "results.json").read_text())
    rows = [ObjectiveRow.from_json(r) for r in saved["rows"]]
    assert json.dumps([r.to_json() for r in rows]) == json.dumps(saved["rows"])
    assert objectives_markdown(rows) == (RESULTS / name / "results.md").read_text()


def test_a_report_of_a_committed_folder_tables_every_run(tmp_path):
    shutil.copytree(RESULTS / "effectiveness", tmp_path / "run")
    page = effectiveness_report(tmp_path / "run").read_text()
    runs = json.loads((tmp_path / "run" / "results.json").read_text())["runs"]
    assert page.count("<tr>") >= len(runs) and "scenes:0.0625" in page
    shutil.copytree(RESULTS / "objectives", tmp_path / "objectives")
    assert "<table>" in effectiveness_report(tmp_path / "objectives").read_text()


def test_a_row_round_trips_with_nan_and_a_file_that_is_not_one_is_named(tmp_path):
    nan = math.nan
    scratch = InitFigures(1.0, 0.5, 2.0, 0.1, 3, lr_search={"0.1": nan, "0.01": 1.0})
    ppkt = InitFigures(nan, nan, nan, nan, 0)
    row = EffectivenessRow("finetune", LabelBudget("scenes", 0.25), scratch, ppkt, 0.01, None)
    again = EffectivenessRow.from_json(json.loads(json.dumps(row.to_json())))
    assert json.dumps(again.to_json()) == json.dumps(row.to_json())
    assert again.budget == row.budget and again.scratch.lr_search.keys() == {"0.1", "0.01"}
    assert math.isnan(again.gain_miou)
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps({"rows": [{"mode": "finetune", "budget": "pixels:3"}]}))
    with pytest.raises(ValueError, match=r"results\.json: not an effectiveness results file .*pixels:3"):
        read_results(bad)


def test_committed_detection_results_give_their_table():
    from ppkt.experiments.effectiveness_detection import DetectionRunRecord, results_markdown, summarize_detection

    folder = RESULTS / "detection-effectiveness-cpu"
    saved = json.loads((folder / "results.json").read_text())
    records = [DetectionRunRecord.from_json(run) for run in saved["runs"]]  # budgets as bare floats
    assert len(records) == 12
    assert results_markdown(summarize_detection(records)) == (folder / "results.md").read_text()

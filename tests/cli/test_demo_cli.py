import json
from pathlib import Path

import numpy as np

from ppkt.cli import main
from ppkt.eval.splits import LabelBudget
from ppkt.experiments.pictures import compared_runs
from ppkt.experiments.results import (
    EffectivenessResults,
    EffectivenessRow,
    InitFigures,
    RunRecord,
    read_results,
)

POINTS_20 = LabelBudget("points", 20)


def test_tiny_demo_end_to_end(tmp_path, monkeypatch, capsys):
    """``ppkt demo --size tiny``: data, pretraining, both searches, table and pictures."""
    monkeypatch.setenv("PPKT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    argv = [
        "demo",
        "--size",
        "tiny",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--pretrain-steps",
        "3",
        "--finetune-steps",
        "4",
        "--scratch-lr-grid",
        "0.01",
        "0.0",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| 20 pts/scene |" in printed and "(smoke run) | 1 seed |" in printed and "SMOKE RUN" in printed
    assert "PPKT at scratch's lr" in (out / "results.md").read_text()
    assert f"{out / 'report.html'}" in printed and (out / "report.html").stat().st_size > 10_000
    results = json.loads((out / "results.json").read_text())
    (row,) = [r for r in results["rows"] if r["mode"] == "finetune"]
    chosen = {}
    for init, key in (("scratch", "lr_backbone"), ("ppkt", "ppkt_lr_backbone")):
        mine = [r for r in results["runs"] if r["init"] == init]
        assert sorted(r["lr_backbone"] for r in mine) == [0.0, 0.01]
        (chosen[init],) = [r for r in mine if r["lr_backbone"] == row[key]]
    assert "freeze_batchnorm: true" in (Path(chosen["ppkt"]["run_dir"]) / "config.yaml").read_text()
    assert "freeze_batchnorm: false" in (Path(chosen["scratch"]["run_dir"]) / "config.yaml").read_text()
    pictures = {p.name for p in (out / "pictures").iterdir()}
    assert {
        "segmentation_scratch_vs_ppkt.png",
        "segmentation_scratch.png",
        "segmentation_ppkt.png",
    } <= pictures
    assert compared_runs(read_results(out / "results.json")) == {
        init: Path(run["run_dir"]) for init, run in chosen.items()
    }


def test_pictures_compare_the_reported_scratch_run():
    def run(init, lr, run_dir):
        return RunRecord(init, "finetune", POINTS_20, 0, 0.1, 0.2, 0.5, 1.0, run_dir, lr)

    runs = (run("scratch", 0.1, "s0.1"), run("scratch", 0.01, "s0.01"), run("ppkt", 0.1, "p"))
    figures = InitFigures(10.0, 0.0, 20.0, 0.0, 1)
    # A row of a file written before PPKT had a rate of its own: PPKT ran at scratch's.
    row = EffectivenessRow.from_json(
        {"mode": "finetune", "budget": "points:20", "lr_backbone": 0.1}
        | {
            f"{init}_{k}": getattr(figures, k)
            for init in ("scratch", "ppkt")
            for k in ("miou", "miou_std", "macc", "macc_std", "seeds")
        }
    )
    assert row.ppkt_lr_backbone == 0.1
    results = EffectivenessResults({}, Path("data"), 1.0, False, 2.0, "m", (row,), runs)
    assert compared_runs(results) == {"scratch": Path("s0.1"), "ppkt": Path("p")}


def test_demo_config_freezes_the_pretrained_batchnorm_unless_told_and_can_search_ppkt():
    import argparse

    from ppkt.cli.demo import SIZES, add_arguments, demo_config

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    default = demo_config(parser.parse_args([]))
    assert default.ppkt_overrides == ("model.freeze_batchnorm=true",) and default.ppkt_lr_search
    assert default.scratch_lr_grid == (0.01, 0.001) and default.cpu_threads == 1 and default.deterministic
    tiny = demo_config(parser.parse_args(["--size", "tiny"]))
    assert tiny.scratch_lr_grid == SIZES["tiny"].lr_grid
    other = demo_config(parser.parse_args(["--ppkt-batchnorm", "train", "--no-ppkt-lr-search"]))
    assert other.ppkt_overrides == () and not other.ppkt_lr_search


def _fake_protocol(monkeypatch, tmp_path, *, pretrain_reused=False, interrupt=False):
    """Replace the expensive stages: the protocol reports through the demo's progress and writes a
    results folder; pictures are one PNG."""
    from ppkt.experiments import effectiveness, pictures
    from ppkt.experiments.effectiveness import PretrainedBackbone, summarize
    from ppkt.viz.panels import save_png

    def protocol(cfg, log=print, *, report):
        report.planned(cfg, 2)
        report.data_ready(tmp_path / "data", reused=True)
        if interrupt:
            raise KeyboardInterrupt
        report.pretraining(10)
        report.pretrained(PretrainedBackbone(cfg.out / "pretrain" / "b.safetensors", 321.0, pretrain_reused))
        records = []
        for k, (init, miou) in enumerate((("scratch", 0.130), ("ppkt", 0.156))):
            run = cfg.out / "runs" / init
            run.mkdir(parents=True, exist_ok=True)
            (run / "metrics.json").write_text("{}")
            records.append(
                RunRecord(init, "finetune", POINTS_20, 0, miou, 0.2, 0.5, 60.0, str(run), 0.01, reused=k == 0)
            )
            report.run_done(records[-1], k + 1)
        (tmp_path / "data").mkdir(exist_ok=True)
        results = EffectivenessResults(
            {},
            tmp_path / "data",
            321.0,
            pretrain_reused,
            400.0,
            "m",
            tuple(summarize(records)),
            tuple(records),
        )
        (cfg.out / "results.json").write_text(json.dumps(results.to_json()))
        return results

    def fake_pictures(cfg, results):
        return [save_png(cfg.out / "pictures" / "features.png", np.zeros((4, 4, 3), np.uint8))]

    monkeypatch.setattr(effectiveness, "run_effectiveness", protocol)
    monkeypatch.setattr(pictures, "demo_pictures", fake_pictures)


def test_demo_prints_stages_one_table_what_it_means_reuse_and_every_file(tmp_path, monkeypatch, capsys):
    _fake_protocol(monkeypatch, tmp_path, pretrain_reused=True)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    for k in (1, 2, 3, 4):
        assert f"[stage {k}/4]" in printed
    assert printed.count("left)") >= 5  # an overall ETA at every stage and run
    assert "| 20 pts/scene | 13.0 | 15.6 | +2.6 | 1 seed |" in printed
    assert printed.count("| labels |") == 1 and "± 0.0" not in printed
    assert "reused:" in printed and "which took 5 min 21 s" in printed  # the old time, said to be old
    assert "2 of 3 runs reused from an earlier run" in printed
    assert "How good is good" in printed and "SMOKE" not in printed
    for name in ("results.json", "report.html", "pictures/features.png"):
        assert str(out / name) in printed
    assert "runs/  (2 files" in printed


def test_ctrl_c_stops_the_demo_with_one_line_and_exit_130(tmp_path, monkeypatch, capsys):
    _fake_protocol(monkeypatch, tmp_path, interrupt=True)
    assert main(["demo", "--out", str(tmp_path / "demo"), "--size", "tiny"]) == 130
    captured = capsys.readouterr()
    last = [line for line in captured.out.splitlines() if line.strip()][-1]
    assert last.startswith("ppkt demo: stopped (Ctrl-C)") and "Traceback" not in captured.out + captured.err

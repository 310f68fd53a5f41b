import json
from pathlib import Path

from ppkt.cli import main
from ppkt.experiments.pictures import compared_runs


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
        "--scratch-lr-grid",
        "0.01",
        "0.0",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| fine-tune | 20 pts/scene |" in printed and "PPKT at scratch's lr" in printed
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
    assert compared_runs(results) == {init: Path(run["run_dir"]) for init, run in chosen.items()}


def test_pictures_compare_the_reported_scratch_run():
    runs = [
        {
            "mode": "finetune",
            "init": "scratch",
            "budget": "points:20",
            "seed": 0,
            "lr_backbone": lr,
            "run_dir": f"s{lr}",
        }
        for lr in (0.1, 0.01)
    ]
    runs.append(
        {
            "mode": "finetune",
            "init": "ppkt",
            "budget": "points:20",
            "seed": 0,
            "lr_backbone": 0.1,
            "run_dir": "p",
        }
    )
    rows = [{"mode": "finetune", "budget": "points:20", "lr_backbone": 0.1}]
    assert compared_runs({"runs": runs, "rows": rows}) == {"scratch": Path("s0.1"), "ppkt": Path("p")}


def test_demo_config_freezes_the_pretrained_batchnorm_unless_told_and_can_search_ppkt():
    import argparse

    from ppkt.cli.demo import add_arguments, demo_config

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    default = demo_config(parser.parse_args([]))
    assert default.ppkt_overrides == ("model.freeze_batchnorm=true",) and default.ppkt_lr_search
    assert default.scratch_lr_grid == (0.01, 0.001)
    other = demo_config(parser.parse_args(["--ppkt-batchnorm", "train", "--no-ppkt-lr-search"]))
    assert other.ppkt_overrides == () and not other.ppkt_lr_search

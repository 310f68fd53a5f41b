import json
from pathlib import Path

from ppkt.cli import main
from ppkt.experiments.pictures import compared_runs


def test_tiny_demo_end_to_end(tmp_path, monkeypatch, capsys):
    """``ppkt demo --size tiny``: data, pretraining, the scratch search, PPKT, table and pictures."""
    monkeypatch.setenv("PPKT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    argv = ["demo", "--size", "tiny", "--out", str(out), "--device", "cpu", "--scratch-lr-grid", "0.1", "0.0"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| fine-tune | 20 pts/scene |" in printed and "scratch 0.1:" in printed
    results = json.loads((out / "results.json").read_text())
    scratch = [r for r in results["runs"] if r["init"] == "scratch"]
    (ppkt,) = [r for r in results["runs"] if r["init"] == "ppkt"]
    assert sorted(r["lr_backbone"] for r in scratch) == [0.0, 0.1]
    assert ppkt["lr_backbone"] == results["rows"][0]["lr_backbone"]
    assert "freeze_batchnorm: true" in (Path(ppkt["run_dir"]) / "config.yaml").read_text()
    (reported,) = [r for r in scratch if r["lr_backbone"] == ppkt["lr_backbone"]]
    pictures = {p.name for p in (out / "pictures").iterdir()}
    assert {
        "segmentation_scratch_vs_ppkt.png",
        "segmentation_scratch.png",
        "segmentation_ppkt.png",
    } <= pictures
    assert compared_runs(results) == {"scratch": Path(reported["run_dir"]), "ppkt": Path(ppkt["run_dir"])}


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
    assert default.ppkt_overrides == ("model.freeze_batchnorm=true",) and not default.ppkt_lr_search
    assert default.scratch_lr_grid == (0.01, 0.001)
    other = demo_config(parser.parse_args(["--ppkt-batchnorm", "train", "--ppkt-lr-search"]))
    assert other.ppkt_overrides == () and other.ppkt_lr_search

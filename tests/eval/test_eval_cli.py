import json

import pytest
from eval_rooms import write_scannet_layout

from ppkt.cli import main
from ppkt.eval.compare import format_comparison, group_runs, load_run

TINY = [
    "--model.voxel_size", "0.25", "--model.backbone", "res16unet14", "--model.width", "0.25",
    "--optim.steps", "1", "--optim.batch_size", "1", "--run.eval_every", "1", "--run.progress", "false",
    "--run.device", "cpu", "--augment.max_points", "300", "--data.num_workers", "0",
]  # fmt: skip


def test_finetune_evaluate_compare_commands(tmp_path, capsys):
    root = write_scannet_layout(tmp_path / "scannet", train=2, val=1)
    runs = []
    for budget, seed in [("0.5", 0), ("0.5", 1), ("1", 0)]:
        out = tmp_path / f"run-{budget}-{seed}"
        args = ["finetune", "--preset", "finetune-scannet", "--data.root", str(root), *TINY]
        args += [
            "--labels.kind",
            "scenes",
            "--labels.budget",
            budget,
            "--labels.seed",
            str(seed),
            "--run.out",
            str(out),
        ]
        assert main(args) == 0
        runs.append(out)
    printed = capsys.readouterr().out
    assert "| mIoU | mAcc |" in printed
    assert (runs[1] / "splits" / "scenes-0.5-seed1.json").is_file()
    assert not (root / "splits").exists()  # nothing is written into the dataset

    assert main(["evaluate", str(runs[0]), "--no-progress", "--out", str(tmp_path / "ev")]) == 0
    ev = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    best = json.loads((runs[0] / "metrics.json").read_text())["best"]
    assert ev["miou"] == pytest.approx(best["miou"])
    assert "wall" in ev["iou"] and ev["iou"]["bed"] is None and "bed" in ev["absent_classes"]
    capsys.readouterr()
    assert main(["evaluate", str(runs[0]), "--no-progress", "--json"]) == 0  # segmentation, as JSON
    printed = json.loads(capsys.readouterr().out)
    assert printed["miou"] == pytest.approx(best["miou"]) and "task" not in printed

    assert main(["compare", *map(str, runs)]) == 0
    table = capsys.readouterr().out
    assert "labels.budget" in table and "seeds" in table
    groups = group_runs([load_run(r) for r in runs])
    assert [len(g.runs) for g in groups] == [2, 1]
    assert [g.settings for g in groups] == [{"labels.budget": 0.5}, {"labels.budget": 1.0}]
    mean, std = groups[0].mean_std("miou")
    values = groups[0].values("miou")
    assert mean == pytest.approx(sum(values) / 2)
    assert std == pytest.approx(abs(values[0] - values[1]) / 2**0.5)
    assert "±" in format_comparison(groups)


def test_print_config_applies_overrides(capsys):
    assert (
        main(["finetune", "--preset", "demo-linear-probe", "--labels.budget", "0.2", "--print-config"]) == 0
    )
    out = capsys.readouterr().out
    assert "budget: 0.2" in out and "mode: linear" in out


def test_compare_rejects_the_same_run_twice(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.yaml").write_text("labels:\n  seed: 0\nmodel:\n  init: null\n")
    (run / "metrics.json").write_text(json.dumps({"best": {"miou": 0.5}, "last": {"miou": 0.4}}))
    with pytest.raises(ValueError, match="same config"):
        group_runs([load_run(run), load_run(run)])
    with pytest.raises(FileNotFoundError, match="config.yaml: not found"):
        load_run(tmp_path)

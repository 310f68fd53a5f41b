import math
import os
import time
from pathlib import Path

import pytest

from ppkt.data.registry import SyntheticRooms
from ppkt.eval.splits import LabelBudget
from ppkt.experiments.demo import (
    REF_FINETUNE_STEP_S,
    REF_PRETRAIN_STEP_S,
    REF_RUN_OVERHEAD_S,
    SIZES,
    DemoProgress,
    DemoSize,
    demo_explanation,
    demo_table,
    format_duration,
    sizes_help,
    written_files,
)
from ppkt.experiments.effectiveness import ExperimentConfig, PretrainedBackbone, RunRecord, results_markdown
from ppkt.experiments.results import EffectivenessRow


def _row(scratch=13.0, ppkt=15.6, seeds=1, std=0.0, mode="finetune"):
    return EffectivenessRow.from_json({**_row_json(scratch, ppkt, seeds, std), "mode": mode})


def _row_json(scratch, ppkt, seeds, std):
    return {
        "mode": "finetune",
        "budget": "points:20",
        "label": "20 pts/scene",
        "scratch_miou": scratch,
        "scratch_miou_std": std,
        "ppkt_miou": ppkt,
        "ppkt_miou_std": std,
        "scratch_macc": 20.0,
        "scratch_macc_std": std,
        "ppkt_macc": 22.0,
        "ppkt_macc_std": std,
        "scratch_seeds": seeds,
        "ppkt_seeds": seeds,
        "gain_miou": ppkt - scratch,
        "lr_backbone": 0.01,
        "ppkt_lr_backbone": 0.001,
        "scratch_lr_search": {"0.01": scratch, "0.001": 12.8},
        "ppkt_lr_search": {"0.01": 13.9, "0.001": ppkt},
        "ppkt_at_scratch_lr_miou": 13.9,
        "ppkt_at_scratch_lr_miou_std": std,
        "gain_at_scratch_lr_miou": 13.9 - scratch,
    }


def _record(init, reused=False, seconds=10.0):
    return RunRecord(
        init,
        "finetune",
        LabelBudget("points", 20),
        0,
        0.1,
        0.2,
        0.5,
        seconds,
        f"runs/{init}",
        0.01,
        reused=reused,
    )


def test_demo_table_has_one_gain_column_and_no_spread_from_one_seed():
    table = demo_table([_row()], smoke=False)
    header, _, line = table.splitlines()
    assert header.count("gain") == 1 and header.count("|") == 6
    assert line == "| 20 pts/scene | 13.0 | 15.6 | +2.6 | 1 seed |"
    assert "±" not in table
    three = demo_table([_row(seeds=3, std=1.25)], smoke=False)
    assert "| 13.0 ± 1.2 | 15.6 ± 1.2 | +2.6 | 3 seeds |" in three
    probe = _row(scratch=3.8, ppkt=20.2, mode="linear")
    assert "| 20 pts/scene, linear probe | 3.8 | 20.2 | +16.4 | 1 seed |" in demo_table(
        [_row(), probe], smoke=False
    )


def test_results_markdown_prints_no_spread_for_one_seed():
    assert "± 0.0" not in results_markdown([_row()])
    assert "13.0 ± 1.0" in results_markdown([_row(seeds=2, std=1.0)])


def test_a_smoke_run_prints_no_gain_and_says_its_numbers_mean_nothing():
    table = demo_table([_row(scratch=9.7, ppkt=16.8)], smoke=True)
    assert "+7.1" not in table and "(smoke run)" in table
    words = demo_explanation([_row()], SIZES["tiny"], validation_rooms=1)
    assert "SMOKE RUN" in words and "mean nothing" in words


def test_the_explanation_says_what_a_good_miou_is_and_names_the_chosen_rates():
    words = demo_explanation([_row()], SIZES["default"], validation_rooms=4)
    assert "4 validation rooms" in words
    assert "scratch 0.01 (tried 0.01: 13.0, 0.001: 12.8)" in words
    assert "PPKT at scratch's rate: 13.9 (+0.9)" in words
    assert "18.5" in words and "1 seed" in words  # the benchmark's reference and the seed count


def test_sizes_help_states_each_measured_time_from_the_one_table():
    text = sizes_help()
    for name, size in SIZES.items():
        assert f"{name} (" in text and size.measured in text
    assert SIZES["tiny"].smoke and not SIZES["default"].smoke


def test_format_duration():
    assert format_duration(45.4) == "45 s"
    assert format_duration(185) == "3 min 05 s"
    assert format_duration(3720) == "1 h 02 min"
    assert format_duration(math.nan) == "?"


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_progress_shows_stages_and_an_eta_learned_from_this_machine_not_from_reused_work(tmp_path):
    size = DemoSize(rooms=2, frames_per_room=1, pretrain_steps=10, finetune_steps=20, lr_grid=(0.01,),
                    smoke=False, measured="-")  # fmt: skip
    lines, clock = [], _Clock()
    progress = DemoProgress(size, pictures=False, log=lines.append, clock=clock)
    cfg = ExperimentConfig(
        out=tmp_path, synthetic=SyntheticRooms(scenes=2, frames_per_scene=1, image_hw=(120, 160))
    )
    progress.planned(cfg, total_runs=3)
    assert lines[-1].startswith("[stage 1/4] synthetic rooms")
    progress.data_ready(tmp_path, reused=True)  # no time, teaches nothing about the speed
    progress.pretraining(10)
    assert lines[-1].startswith("[stage 2/4] PPKT pretraining: 10 steps")
    run = REF_RUN_OVERHEAD_S + 20 * REF_FINETUNE_STEP_S
    assert progress.eta() == pytest.approx(10 * REF_PRETRAIN_STEP_S + 3 * run)
    clock.now += 2 * 10 * REF_PRETRAIN_STEP_S  # this machine is twice as slow as the reference
    progress.pretrained(PretrainedBackbone(tmp_path / "b.safetensors", 18.0, reused=False))
    assert lines[-1].startswith("[stage 3/4] fine-tuning: 3 runs of 20 steps")
    assert progress.eta() == pytest.approx(2 * 3 * run)
    progress.run_done(_record("scratch", reused=True, seconds=999.0), 1)  # instant, from an earlier run
    assert "reused: finished by an earlier run, which took 999 s" in lines[-1]
    assert progress.eta() == pytest.approx(2 * 2 * run)
    clock.now += run  # this run went at the reference speed: the estimate speeds up
    progress.run_done(_record("ppkt"), 2)
    assert lines[-1].startswith("  [2/3] finetune") and "left)" in lines[-1]
    speed = (2 * 10 * REF_PRETRAIN_STEP_S + run) / (10 * REF_PRETRAIN_STEP_S + run)
    assert progress.eta() == pytest.approx(speed * run)


def test_written_files_lists_every_file_and_says_which_are_from_an_earlier_run(tmp_path):
    (tmp_path / "pictures").mkdir()
    (tmp_path / "runs" / "a").mkdir(parents=True)
    old = [tmp_path / "results.md", tmp_path / "runs" / "a" / "metrics.json"]
    for path in old:
        path.write_text("x")
        os.utime(path, (1000.0, 1000.0))
    (tmp_path / "results.json").write_text("{}")
    (tmp_path / "pictures" / "features.png").write_bytes(b"png")
    (tmp_path / "runs" / "a" / "config.yaml").write_text("x")
    lines = written_files(tmp_path, since=time.time() - 60)
    text = "\n".join(lines)
    assert f"{tmp_path / 'results.md'} (from an earlier run)" in text
    assert f"{tmp_path / 'results.json'}: every run's metrics" in text
    assert f"{tmp_path / 'pictures' / 'features.png'}" in text
    assert f"{Path(tmp_path / 'runs')}/  (2 files, 1 written now, the rest reused)" in text


def test_the_docs_quote_the_sizes_and_times_of_the_code():
    docs = (Path(__file__).parents[2] / "docs" / "demo.md").read_text()
    for name, size in SIZES.items():
        lr = ", ".join(f"{x:g}" for x in size.lr_grid)
        row = (
            f"| `{name}` | {size.rooms} | {size.frames_per_room} | {size.pretrain_steps} | "
            f"{size.finetune_steps} | {lr} | {size.measured} |"
        )
        assert row in docs, row

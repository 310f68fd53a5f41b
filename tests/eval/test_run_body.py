"""The fine-tuning run body (``ppkt.eval.training_loop.run_task``) with a task of its own: what the body
does for any task (best result by score with NaN, skipped micro-batches, resume of both), apart
from segmentation's and detection's own runs (tested in their files)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from ppkt.engine import RunInterrupted
from ppkt.eval.config import EvalOptimConfig, EvalRunConfig, FinetuneConfig
from ppkt.eval.data import SceneDataset
from ppkt.eval.splits import LabelSplit
from ppkt.eval.training_loop import Evaluation, FinetuneTask, StepLoss, run_finetuning

SCENES = ("s0", "s1", "s2", "s3")


@dataclass
class ToyBatch:
    x: torch.Tensor
    y: torch.Tensor
    scene_ids: list[str]

    def to(self, device) -> ToyBatch:
        return ToyBatch(self.x.to(device), self.y.to(device), self.scene_ids)


class ToySource:
    """Scene ``sK``: two numbers and a target, fixed by K."""

    class_names = ("value",)

    def scene_ids(self, split: str) -> list[str]:
        return list(SCENES)

    def read(self, scene_id: str):
        k = float(scene_id[1:])
        return scene_id, torch.tensor([[k, 1.0]]), torch.tensor([[2.0 * k - 1.0]])


class ToyDataset(SceneDataset):
    task = "toy"

    def sample(self, scene):
        return scene

    def collate(self, samples) -> ToyBatch:
        return ToyBatch(
            torch.cat([s[1] for s in samples]), torch.cat([s[2] for s in samples]), [s[0] for s in samples]
        )


class ToyModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = torch.nn.Linear(2, 2)
        self.head = torch.nn.Linear(2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


@dataclass
class ToyMetrics:
    score: float

    def to_markdown(self) -> str:
        return f"score {self.score}\n"


class ToyTask(FinetuneTask):
    """Scene s1 is never usable; validation scores come from ``scores`` in order."""

    label = "toy"
    log_prefix = "toy/"
    resume_command = "toy --resume"
    skip_reason = "scene s1"

    def __init__(self, cfg, scores: list[float], interrupt_at_evaluation: int | None = None) -> None:
        super().__init__(cfg)
        self.scores, self.interrupt_at = list(scores), interrupt_at_evaluation
        self.evaluations, self.restored = 0, None

    def label_split(self, source):
        split = LabelSplit("scenes", 1.0, 0, SCENES, SCENES, {s: 1 for s in SCENES})
        return tuple(source.class_names), split

    def datasets(self, source, split):
        common = dict(voxel_size=1.0, input_features="none", cache_scenes=True)
        return ToyDataset(source, split.scenes, **common), ToyDataset(source, SCENES[:1], **common)

    def build_model(self, class_names):
        return ToyModel()

    def optimizer(self, model):
        groups = [{"params": list(model.parameters()), "lr": 0.05, "name": "all"}]
        groups[0]["initial_lr"] = 0.05
        return torch.optim.SGD(groups, lr=0.05)

    def usable(self, batch: ToyBatch) -> bool:
        return "s1" not in batch.scene_ids

    def loss(self, net, model, batch: ToyBatch) -> StepLoss:
        return StepLoss(torch.nn.functional.mse_loss(net(batch.x), batch.y))

    def evaluate(self, model, dataset, class_names, rt) -> Evaluation:
        self.evaluations += 1
        if self.evaluations == self.interrupt_at:
            raise KeyboardInterrupt
        return self._evaluation(self.scores.pop(0))

    def _evaluation(self, score: float) -> Evaluation:
        return Evaluation(
            ToyMetrics(score),
            score,
            {"score": score},
            {"best_score": torch.tensor(score, dtype=torch.float64)},
        )

    def restore_best(self, loop, class_names):
        self.restored = float(loop["best_score"]) if "best_score" in loop else None
        return None if self.restored is None else self._evaluation(self.restored)

    def summary(self, split, best, last, best_step):
        return {"best": best.score, "last": last.score, "best_step": best_step}


def toy_config(out: Path) -> FinetuneConfig:
    return FinetuneConfig(
        optim=EvalOptimConfig(steps=6, batch_size=1, schedule="constant"),
        run=EvalRunConfig(
            out=out, eval_every=1, log_every=1, checkpoint_every=2, progress=False, device="cpu",
            deterministic=True, tensorboard=False,
        ),
    )  # fmt: skip


SCORES = [math.nan, 0.5, 0.3, 0.7, 0.6, 0.7]


def test_any_task_runs_through_the_body_best_by_score_and_skipped_batches(tmp_path):
    """NaN is replaced by the first number, a tie does not replace the best; micro-batches the task
    refuses are counted and logged and take no step."""
    run = run_finetuning(ToyTask(toy_config(tmp_path / "full"), SCORES), ToySource(), False, False)
    assert run.best_step == 4 and run.best.score == 0.7 and run.last.score == 0.7
    events = [json.loads(line) for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    skips = [e["step"] for e in events if e["event"] == "skip"]
    assert run.skipped_batches == len(skips) > 0
    assert sorted(run.losses) == sorted(set(range(1, 7)) - set(skips))
    assert all(e["reason"] == "scene s1" for e in events if e["event"] == "skip")
    assert [e["score"] for e in events if e["event"] == "val"][1:] == SCORES[1:]
    assert json.loads((tmp_path / "full" / "metrics.json").read_text()) == {
        "best": 0.7,
        "last": 0.7,
        "best_step": 4,
    }
    assert (tmp_path / "full" / "metrics.md").read_text().startswith("# full: toy, labels scenes-")


def test_the_body_resumes_the_best_result_and_the_skip_count_of_any_task(tmp_path):
    """Ctrl-C at step 5's evaluation, resume from the step-4 checkpoint: the same losses, skips and
    best as the uninterrupted run, the best coming back through the task's restore_best."""
    full = run_finetuning(ToyTask(toy_config(tmp_path / "full"), SCORES), ToySource(), False, False)
    cut = toy_config(tmp_path / "cut")
    with pytest.raises(RunInterrupted, match=f"resume with: toy --resume {cut.run.out}"):
        run_finetuning(ToyTask(cut, SCORES, interrupt_at_evaluation=5), ToySource(), False, False)
    task = ToyTask(cut, SCORES[4:])
    resumed = run_finetuning(task, ToySource(), True, False)
    assert task.restored == 0.7  # step 4's score, from the checkpoint's loop state
    assert resumed.best_step == 4 and resumed.best.score == 0.7
    assert resumed.skipped_batches == full.skipped_batches
    assert resumed.losses == {s: v for s, v in full.losses.items() if s > 4}

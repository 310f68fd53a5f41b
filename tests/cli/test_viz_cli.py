import json

import numpy as np
import pytest
from PIL import Image

from ppkt.cli import main


def _rich(path, min_colors=20):
    image = np.asarray(Image.open(path).convert("RGB"))
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > min_colors
    return image


def test_viz_curves(tmp_path):
    pytest.importorskip("matplotlib")
    lines = [json.dumps({"step": s, "loss": 8 / (1 + s), "steps_per_s": 2.0 + s % 3}) for s in range(30)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines))
    assert main(["viz", "curves", str(tmp_path)]) == 0
    _rich(tmp_path / "pictures" / "curves.png", min_colors=5)  # every figure of a run in RUN/pictures/


def test_viz_overlay_on_synthetic_rgbd(tmp_path, capsys):
    from ppkt.data.synthetic import generate_dataset

    root = generate_dataset(
        tmp_path / "data", scenes=1, frames_per_scene=2, seed=3, image_hw=(60, 80), progress=False
    )
    out = tmp_path / "overlay.png"
    assert main(["viz", "overlay", str(root), "--index", "1", "--out", str(out), "--every", "2"]) == 0
    image = _rich(out)
    assert image.shape[0] >= 60 and image.shape[1] >= 160  # frame and overlay side by side
    assert main(["viz", "overlay", str(root), "--index", "99", "--out", str(out)]) == 2
    assert "out of range" in capsys.readouterr().err

"""Figures of trained models, on a tiny pretraining run and a tiny fine-tuning run made here."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ppkt.cli import main
from ppkt.data.ply import read_ply_vertices


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny tensors gain nothing from threads; on a shared 2-core machine they slow everything."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from ppkt.data.synthetic import generate_dataset

    out = tmp_path_factory.mktemp("viz-data") / "rooms"
    return generate_dataset(
        out, scenes=2, frames_per_scene=2, image_hw=(60, 80), max_points=20_000, progress=False
    )


@pytest.fixture(scope="module")
def pretrain_run(synthetic_root, tmp_path_factory):
    """A 2-step pretraining run written by the pretraining package itself."""
    from ppkt.train.loop import pretrain
    from tiny_pretrain import tiny_config

    run = tmp_path_factory.mktemp("viz-pretrain") / "run"
    cfg = tiny_config(
        run,
        **{
            "data.kind": "scannet",
            "data.root": str(synthetic_root),
            "data.split": "none",
            "data.image_hw": "60,80",
            "optim.steps": "2",
        },
    )
    pretrain(cfg)
    return run


@pytest.fixture(scope="module")
def loaded_run(pretrain_run):
    from ppkt.train.loop import build_frames
    from ppkt.viz.model_figures import frame_embeddings, load_pretrain_run

    model, cfg, _ = load_pretrain_run(pretrain_run)
    frame = build_frames(cfg)[0]
    return model, cfg, frame, frame_embeddings(model, frame, cfg)


@pytest.fixture(scope="module")
def finetune_run(synthetic_root, tmp_path_factory):
    from ppkt.eval.config import (
        EvalAugmentConfig,
        EvalDataConfig,
        EvalOptimConfig,
        EvalRunConfig,
        FinetuneConfig,
        ModelConfig,
    )
    from ppkt.eval.finetune import finetune

    run = tmp_path_factory.mktemp("viz-finetune") / "run"
    cfg = FinetuneConfig(
        origin="test",
        data=EvalDataConfig(kind="scannet", root=synthetic_root, num_classes=20),
        augment=EvalAugmentConfig(max_points=2000),
        model=ModelConfig(backbone="res16unet14", width=0.25, voxel_size=0.2),
        optim=EvalOptimConfig(steps=2, batch_size=1),
        run=EvalRunConfig(out=run, eval_every=2, log_every=1, progress=False, device="cpu"),
    )
    finetune(cfg)
    return run


def _png(path: Path, min_colors: int = 20) -> np.ndarray:
    image = np.asarray(Image.open(path).convert("RGB"))
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > min_colors, f"{path} is nearly blank"
    return image


# ------------------------------------------------------------------------------------------ embeddings
def test_frame_embeddings_match_the_training_forward_pass(loaded_run):
    """Without augmentation, the figure's per-point and per-pixel embeddings are exactly what the
    pretraining model computes for the frame's pairs (gathered through point_to_voxel / the UPL)."""
    from ppkt.train.batch import Collator
    from ppkt.train.samples import rgbd_sample
    from ppkt.viz.model_figures import no_augmentation

    model, cfg, frame, emb = loaded_run
    n = len(emb.points)
    d = cfg.loss.embedding_dim
    h, w = cfg.data.image_hw
    assert emb.point_embeddings.shape == (n, d) and emb.pixel_embeddings.shape == (d, h, w)
    assert emb.image.shape == (h, w, 3) and emb.point_colors.shape == (n, 3)
    assert emb.backbone_features.shape[0] == n and emb.teacher_features.shape[0] == model.teacher.out_channels
    np.testing.assert_allclose(np.linalg.norm(emb.pixel_embeddings, axis=0), 1.0, atol=1e-5)

    sample = rgbd_sample(
        frame, cfg.data, no_augmentation(), cfg.model.input_features, np.random.default_rng(0)
    )
    batch = Collator(cfg.model.voxel_size)([sample])
    with torch.no_grad():
        pairs = model(batch)
    np.testing.assert_allclose(
        emb.point_embeddings[batch.pair_point.numpy()], pairs.points.numpy(), atol=1e-5
    )
    ij = batch.pair_uv.round().long()  # no augmentation: pairs sit on pixel centres
    np.testing.assert_allclose(batch.pair_uv.numpy(), ij.float().numpy(), atol=1e-4)
    at_pixels = emb.pixel_embeddings[:, ij[:, 1].numpy(), ij[:, 0].numpy()].T
    np.testing.assert_allclose(at_pixels, pairs.pixels.numpy(), atol=1e-4)
    # the same pixel's colour on both sides, and points lie in front of the camera
    assert np.isfinite(emb.point_uv).all()
    u, v = emb.point_uv[:, 0].round().astype(int), emb.point_uv[:, 1].round().astype(int)
    np.testing.assert_array_equal(emb.point_colors, emb.image[v, u])


def test_feature_figures_write_png_and_ply(loaded_run, tmp_path):
    from ppkt.viz.model_figures import pretrain_feature_figures

    model, cfg, frame, emb = loaded_run
    out = pretrain_feature_figures(model, frame, cfg, tmp_path, embeddings=emb)
    image = _png(out.features_png)
    assert image.shape == out.figure.shape and image.shape[1] > 3 * image.shape[0]  # 4 panels side by side
    _png(out.backbone_png)
    ply = read_ply_vertices(out.features_ply)
    assert len(ply["x"]) == len(emb.points)
    colors = np.stack([ply["red"], ply["green"], ply["blue"]], 1)
    np.testing.assert_array_equal(colors, out.point_colors)
    assert len(np.unique(colors, axis=0)) > 50  # PCA colours vary over the cloud
    np.testing.assert_allclose(ply["x"], emb.points[:, 0], atol=1e-6)
    assert len(read_ply_vertices(out.backbone_ply)["x"]) == len(emb.points)


def test_similarity_query_choice_and_figure(loaded_run, tmp_path):
    from ppkt.viz.model_figures import choose_query_point, similarity_figures

    model, cfg, frame, emb = loaded_run
    h, w = emb.image.shape[:2]
    centre = choose_query_point(emb)
    dist = np.square(emb.point_uv - [(w - 1) / 2, (h - 1) / 2]).sum(1)
    assert dist[centre] == dist.min()
    corner = choose_query_point(emb, uv=(0.0, 0.0))
    assert np.square(emb.point_uv[corner]).sum() == np.square(emb.point_uv).sum(1).min()
    with pytest.raises(ValueError, match="out of range"):
        choose_query_point(emb, point=len(emb.points))
    out = similarity_figures(model, frame, cfg, tmp_path, point=7, embeddings=emb)
    assert out.query_point == 7 and out.query_uv == tuple(emb.point_uv[7].tolist())
    image = _png(out.png)
    assert ((image == [255, 0, 0]).all(-1)).sum() > 20  # the query is marked


# ----------------------------------------------------------------------------------------- segmentation
def test_segmentation_figures_predict_every_point(finetune_run, tmp_path):
    from ppkt.eval.data import SegmentationDataset
    from ppkt.eval.finetune import build_source, load_checkpoint, predict_points
    from ppkt.viz.model_figures import segmentation_figures

    model, cfg, class_names = load_checkpoint(finetune_run / "checkpoints" / "best.safetensors")
    source = build_source(cfg.data)
    scene_id = source.scene_ids("val")[0]
    scene = source.read(scene_id)
    out = segmentation_figures(model, scene, cfg, class_names, tmp_path)
    assert out.predicted.shape == (scene.num_points,)
    # the same predictions as the evaluation path
    dataset = SegmentationDataset(
        source, [scene_id], voxel_size=cfg.model.voxel_size, input_features="rgb", num_classes=20
    )
    expected = predict_points(model, dataset.collate([dataset[0]])).numpy()
    np.testing.assert_array_equal(out.predicted, expected)
    labelled = scene.labels >= 0
    assert out.accuracy == pytest.approx((expected[labelled] == scene.labels[labelled]).mean())
    present = np.unique(scene.labels[labelled])
    inter_union = [  # per-class IoU over labelled points, by hand
        np.sum((expected[labelled] == c) & (scene.labels[labelled] == c))
        / np.sum((expected[labelled] == c) | (scene.labels[labelled] == c))
        for c in present
    ]
    assert out.miou == pytest.approx(np.mean(inter_union))
    image = _png(out.png, min_colors=8)
    assert image.shape == out.figure.shape
    ply = read_ply_vertices(out.ply)
    assert len(ply["x"]) == scene.num_points


# ------------------------------------------------------------------------------------------------- CLI
def test_cli_features_and_similarity(pretrain_run, tmp_path, capsys):
    assert main(["viz", "features", str(pretrain_run), "--frame-index", "1", "--out", str(tmp_path)]) == 0
    for name in ("features.png", "backbone_features.png"):
        _png(tmp_path / name)
    for name in ("features.ply", "backbone_features.ply"):
        assert len(read_ply_vertices(tmp_path / name)["x"]) > 100
    assert main(["viz", "similarity", str(pretrain_run), "--uv", "5", "5", "--out", str(tmp_path)]) == 0
    _png(tmp_path / "similarity.png")
    assert main(["viz", "features", str(pretrain_run), "--frame-index", "99", "--out", str(tmp_path)]) == 2
    assert "out of range" in capsys.readouterr().err
    assert main(["viz", "similarity", str(tmp_path)]) == 2
    assert "not a pretraining run folder" in capsys.readouterr().err


def test_cli_segmentation(finetune_run, tmp_path, capsys):
    out = tmp_path / "seg" / "pred.png"
    assert main(["viz", "segmentation", str(finetune_run), "--out", str(out)]) == 0
    _png(out, min_colors=8)
    assert len(read_ply_vertices(out.with_suffix(".ply"))["x"]) > 100
    assert main(["viz", "segmentation", str(tmp_path)]) == 2
    assert "no fine-tuning checkpoint" in capsys.readouterr().err

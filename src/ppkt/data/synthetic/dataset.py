"""Write synthetic rooms as a ScanNet exported-frames dataset, and cache it.

Layout (what :class:`ppkt.data.scannet.ScanNetFrames` and ``read_scannet_scene`` read)::

    <root>/synthetic.json                     generator version, parameters, classes, scenes
    <root>/scannetv2_train.txt, scannetv2_val.txt
    <root>/scene%04d_00/
        color/<i>.jpg                          RGB, JPEG quality 90; i = 0, 25, 50, ... (frame k -> 25 k)
        depth/<i>.png                          uint16 millimetres, 0 = invalid
        label/<i>.png                          uint8 NYU40 id per pixel, 0 = nothing (optional, ppkt only)
        pose/<i>.txt                           4x4 world_from_camera (OpenCV camera, world z up)
        intrinsic/intrinsic_color.txt          4x4, the same K as intrinsic_depth (registered images)
        intrinsic/intrinsic_depth.txt
        intrinsic/extrinsic_color.txt          identity
        intrinsic/extrinsic_depth.txt          identity
        <scene>_vh_clean_2.ply                 x, y, z float; red, green, blue uchar
        <scene>_vh_clean_2.labels.ply          the same points with label ushort (NYU40 id)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ppkt.data.ply import write_ply_vertices
from ppkt.data.synthetic.layout import generate_scene
from ppkt.data.synthetic.render import add_depth_noise, camera_rays, render, sample_scene_cloud
from ppkt.data.synthetic.trajectory import camera_trajectory
from ppkt.utils.io import atomic_write_json

GENERATOR_VERSION = "3"
"""Bumped whenever the output for given parameters changes (cache key)."""

FRAME_NUMBER_STRIDE = 25
"""Frame ``k`` of a room is written as raw frame number ``25 k``: consecutive synthetic frames are as
far apart as the every-25th-frame subsampling of a 30 Hz ScanNet stream, and ScanNetFrames' default
``frame_skip=25`` (or 1) reads them all."""

SCANNET_DEPTH_K = np.array([[577.870605, 0.0, 319.5], [0.0, 577.870605, 239.5], [0.0, 0.0, 1.0]])
SCANNET_DEPTH_HW = (480, 640)

CLASSES = {
    1: "wall",
    2: "floor",
    3: "cabinet",
    4: "bed",
    5: "chair",
    6: "sofa",
    7: "table",
    8: "door",
    9: "window",
    10: "bookshelf",
    11: "picture",
    14: "desk",
    16: "curtain",
    18: "pillow (ignored)",
    22: "ceiling (ignored)",
    39: "otherfurniture",
}
"""NYU40 ids the generator writes, with their names."""


@dataclass(frozen=True)
class SynthParams:
    """Everything that determines a synthetic dataset (its cache key, with the version).

    Attributes:
        scenes: number of rooms.
        frames_per_scene: frames rendered per room.
        seed: master seed; room ``k`` uses ``SeedSequence([seed, k])``.
        image_hw: ``(H, W)`` of colour and depth (registered, same K).
        depth_noise: add sensor-like depth noise and holes.
        ceiling: rooms have a ceiling (NYU40 22, ignored by the benchmark).
        point_spacing: spacing of the labelled cloud's samples, metres.
        max_points: cap on a scene's cloud (the spacing grows to meet it).
        write_labels: also write ``label/<i>.png`` (per-pixel NYU40 ids).
        val_fraction: share of scenes listed in ``scannetv2_val.txt`` (the last ones).
    """

    scenes: int
    frames_per_scene: int
    seed: int = 0
    image_hw: tuple[int, int] = (240, 320)
    depth_noise: bool = True
    ceiling: bool = True
    point_spacing: float = 0.02
    max_points: int = 150_000
    write_labels: bool = True
    val_fraction: float = 0.2

    def __post_init__(self) -> None:
        # Normalise types once, so that equal parameters (e.g. 0.2 vs a numpy float) give equal keys.
        normalized = {
            "scenes": int(self.scenes), "frames_per_scene": int(self.frames_per_scene),
            "seed": int(self.seed),
            "image_hw": (int(self.image_hw[0]), int(self.image_hw[1])), "depth_noise": bool(self.depth_noise),
            "ceiling": bool(self.ceiling), "point_spacing": float(self.point_spacing),
            "max_points": int(self.max_points), "write_labels": bool(self.write_labels),
            "val_fraction": float(self.val_fraction),
        }  # fmt: skip
        for name, value in normalized.items():
            object.__setattr__(self, name, value)

    def cache_key(self) -> str:
        blob = json.dumps({"version": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def scene_name(index: int) -> str:
    return f"scene{index:04d}_00"


def intrinsics_for(hw: tuple[int, int]) -> np.ndarray:
    """ScanNet's depth-camera K scaled to ``hw`` (docs/conventions.md resize rule)."""
    sy, sx = hw[0] / SCANNET_DEPTH_HW[0], hw[1] / SCANNET_DEPTH_HW[1]
    K = SCANNET_DEPTH_K.copy()
    K[0, 0] *= sx
    K[1, 1] *= sy
    K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
    K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
    return K


def split_scenes(count: int, val_fraction: float) -> tuple[list[str], list[str]]:
    """Deterministic train/val split: the last ``round(count * val_fraction)`` scenes (>= 1 if count >= 2)."""
    n_val = int(round(count * val_fraction))
    if count >= 2:
        n_val = min(max(n_val, 1), count - 1)
    else:
        n_val = 0
    names = [scene_name(k) for k in range(count)]
    return names[: count - n_val], names[count - n_val :]


def _matrix_text(m: np.ndarray) -> str:
    return "\n".join(" ".join(f"{x:.8f}" for x in row) for row in m) + "\n"


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def write_scene(root: Path, index: int, params: SynthParams) -> dict:
    """Generate, render and write room ``index``; returns its manifest entry."""
    streams = np.random.SeedSequence([params.seed, index]).spawn(4)
    layout_rng, path_rng, noise_rng, cloud_rng = (np.random.default_rng(s) for s in streams)
    scene = generate_scene(layout_rng, ceiling=params.ceiling)
    name = scene_name(index)
    out = root / name
    for sub in ("color", "depth", "pose", "intrinsic") + (("label",) if params.write_labels else ()):
        (out / sub).mkdir(parents=True, exist_ok=True)
    K = intrinsics_for(params.image_hw)
    K4 = np.eye(4)
    K4[:3, :3] = K
    for fname, matrix in (
        ("intrinsic_color", K4),
        ("intrinsic_depth", K4),
        ("extrinsic_color", np.eye(4)),
        ("extrinsic_depth", np.eye(4)),
    ):
        (out / "intrinsic" / f"{fname}.txt").write_text(_matrix_text(matrix))
    poses = camera_trajectory(scene, path_rng, params.frames_per_scene)
    rays = camera_rays(K, params.image_hw)
    # A slowly drifting auto-exposure, as handheld captures have.
    exposure = 1.0 + 0.08 * np.sin(noise_rng.uniform(0, 2 * np.pi) + np.linspace(0, 3, len(poses)))
    valid_fraction = []
    for k, pose in enumerate(poses):
        i = k * FRAME_NUMBER_STRIDE
        frame = render(scene, K, params.image_hw, pose, rays_camera=rays, exposure=float(exposure[k]))
        depth = add_depth_noise(frame, noise_rng) if params.depth_noise else frame.depth
        depth_mm = np.clip(np.round(depth * 1000.0), 0, 65535).astype(np.uint16)
        valid_fraction.append(float((depth_mm > 0).mean()))
        Image.fromarray(frame.color).save(out / "color" / f"{i}.jpg", quality=90)
        (out / "depth" / f"{i}.png").write_bytes(_png_bytes(depth_mm))
        (out / "pose" / f"{i}.txt").write_text(_matrix_text(pose))
        if params.write_labels:
            (out / "label" / f"{i}.png").write_bytes(_png_bytes(frame.label))
    cloud = sample_scene_cloud(scene, cloud_rng, spacing=params.point_spacing, max_points=params.max_points)
    xyz = {"x": cloud.points[:, 0], "y": cloud.points[:, 1], "z": cloud.points[:, 2]}
    rgb = {"red": cloud.colors[:, 0], "green": cloud.colors[:, 1], "blue": cloud.colors[:, 2]}
    write_ply_vertices(out / f"{name}_vh_clean_2.ply", {**xyz, **rgb}, comment="ppkt synthetic room")
    write_ply_vertices(
        out / f"{name}_vh_clean_2.labels.ply",
        {**xyz, **rgb, "label": cloud.nyu40},
        comment="ppkt synthetic room, NYU40 labels",
    )
    return {
        "name": name,
        "frames": len(poses),
        "points": int(len(cloud.points)),
        "room_size": [round(float(x), 3) for x in scene.room.size],
        "parts": len(scene.parts),
        "labels_in_cloud": sorted(int(x) for x in np.unique(cloud.nyu40)),
        "valid_depth_fraction": round(float(np.mean(valid_fraction)), 4),
    }


def _write_scene_job(args: tuple[str, int, SynthParams]) -> dict:
    root, index, params = args
    return write_scene(Path(root), index, params)


def generate_dataset(
    out_dir: str | Path,
    *,
    scenes: int,
    frames_per_scene: int,
    seed: int = 0,
    image_hw: tuple[int, int] = (240, 320),
    depth_noise: bool = True,
    ceiling: bool = True,
    point_spacing: float = 0.02,
    max_points: int = 150_000,
    write_labels: bool = True,
    val_fraction: float = 0.2,
    workers: int = 1,
    progress: bool = True,
) -> Path:
    """Render ``scenes`` random rooms into ``out_dir`` in the ScanNet exported layout.

    The rooms are written into a temporary folder beside ``out_dir`` that is renamed to
    ``out_dir`` only once complete, so an interrupted run leaves no half dataset behind.
    The result depends only on the parameters (not on ``workers``).

    Raises:
        FileExistsError: ``out_dir`` exists and is not empty.
    """
    if scenes < 1 or frames_per_scene < 1:
        raise ValueError(
            f"generate_dataset: scenes ({scenes}) and frames_per_scene ({frames_per_scene}) must be >= 1"
        )
    params = SynthParams(
        scenes, frames_per_scene, seed, image_hw, depth_noise, ceiling, point_spacing, max_points,
        write_labels, val_fraction,
    )  # fmt: skip
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir}: exists and is not empty; choose a new folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=scenes * frames_per_scene, unit="frame", desc="synthetic rooms", disable=not progress
        )
        jobs = [(str(tmp), k, params) for k in range(scenes)]
        entries = []
        if workers > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for entry in pool.map(_write_scene_job, jobs):
                    entries.append(entry)
                    bar.update(frames_per_scene)
        else:
            for job in jobs:
                entries.append(_write_scene_job(job))
                bar.update(frames_per_scene)
        bar.close()
        train, val = split_scenes(scenes, val_fraction)
        (tmp / "scannetv2_train.txt").write_text("".join(f"{s}\n" for s in train))
        (tmp / "scannetv2_val.txt").write_text("".join(f"{s}\n" for s in val))
        atomic_write_json(
            tmp / "synthetic.json",
            {
                "generator": "ppkt.data.synthetic",
                "version": GENERATOR_VERSION,
                "params": asdict(params),
                "cache_key": params.cache_key(),
                "intrinsics": intrinsics_for(params.image_hw).tolist(),
                "depth_scale": 1000.0,
                "classes_nyu40": {str(k): v for k, v in CLASSES.items()},
                "scenes": entries,
            },
        )
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked above); os.replace needs the name free or empty
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def default_cache_dir() -> Path:
    """``$PPKT_CACHE/synthetic`` when set, else ``~/.cache/ppkt/synthetic``."""
    base = os.environ.get("PPKT_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "ppkt") / "synthetic"


def ensure_dataset(
    *,
    scenes: int,
    frames_per_scene: int,
    seed: int = 0,
    image_hw: tuple[int, int] = (240, 320),
    depth_noise: bool = True,
    ceiling: bool = True,
    point_spacing: float = 0.02,
    max_points: int = 150_000,
    write_labels: bool = True,
    val_fraction: float = 0.2,
    cache_dir: str | Path | None = None,
    workers: int = 1,
    progress: bool = True,
) -> Path:
    """The dataset for these parameters, generated once and then reused from ``cache_dir/<key>``.

    The key hashes the generator version and every parameter; a folder is reused only when its
    ``synthetic.json`` (written last, inside the atomically renamed folder) is there.
    """
    params = SynthParams(
        scenes, frames_per_scene, seed, image_hw, depth_noise, ceiling, point_spacing, max_points,
        write_labels, val_fraction,
    )  # fmt: skip
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = root / params.cache_key()
    if (target / "synthetic.json").is_file():
        return target
    if target.exists() and not any(target.iterdir()):
        target.rmdir()
    try:
        return generate_dataset(target, **asdict(params), workers=workers, progress=progress)
    except (FileExistsError, OSError):
        # Another process finished the same dataset first.
        if (target / "synthetic.json").is_file():
            return target
        raise

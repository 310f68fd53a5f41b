"""Procedural indoor rooms rendered as a ScanNet-style RGB-D dataset (the default, offline dataset).

``generate_dataset`` / ``ensure_dataset`` write rooms in ScanNet's exported-frames layout so the
ScanNet readers read them unchanged; see docs/synthetic.md for the classes and the choices made.
"""

from ppkt.data.synthetic.dataset import (
    CLASSES,
    GENERATOR_VERSION,
    SynthParams,
    default_cache_dir,
    ensure_dataset,
    generate_dataset,
    intrinsics_for,
    scene_name,
    split_scenes,
    write_scene,
)
from ppkt.data.synthetic.layout import Part, Room, Scene, generate_scene
from ppkt.data.synthetic.preview import write_preview
from ppkt.data.synthetic.render import (
    RenderedFrame,
    SceneCloud,
    add_depth_noise,
    camera_rays,
    render,
    sample_scene_cloud,
)
from ppkt.data.synthetic.trajectory import camera_trajectory

__all__ = [
    "CLASSES",
    "GENERATOR_VERSION",
    "Part",
    "RenderedFrame",
    "Room",
    "Scene",
    "SceneCloud",
    "SynthParams",
    "add_depth_noise",
    "camera_rays",
    "camera_trajectory",
    "default_cache_dir",
    "ensure_dataset",
    "generate_dataset",
    "generate_scene",
    "intrinsics_for",
    "render",
    "sample_scene_cloud",
    "scene_name",
    "split_scenes",
    "write_preview",
    "write_scene",
]

"""Datasets: readers that turn files into typed frames, samples and labelled scenes.

Every format is one entry of :data:`ppkt.data.registry.DATASETS`; the commands open data with
:func:`open_frames` (pretraining) and :func:`open_scenes` (fine-tuning, evaluation).
"""

from ppkt.data.registry import DATASETS, DatasetSpec, FrameRequest, SceneRequest, open_frames, open_scenes
from ppkt.data.report import DataReport, FrameError
from ppkt.data.scannet import ScanNetFrames, read_scannet_scene, scannet_split
from ppkt.data.types import (
    IGNORE_LABEL,
    CameraImage,
    LabeledScene,
    LidarCameraSample,
    RGBDFrame,
    SceneSource,
)

__all__ = [
    "DATASETS",
    "IGNORE_LABEL",
    "CameraImage",
    "DataReport",
    "DatasetSpec",
    "FrameError",
    "FrameRequest",
    "LabeledScene",
    "LidarCameraSample",
    "RGBDFrame",
    "SceneRequest",
    "SceneSource",
    "ScanNetFrames",
    "open_frames",
    "open_scenes",
    "read_scannet_scene",
    "scannet_split",
]

"""Datasets: readers that turn files into typed frames, samples and labelled scenes."""

from ppkt.data.report import DataReport, FrameError
from ppkt.data.scannet import ScanNetFrames, read_scannet_scene, scannet_split
from ppkt.data.types import IGNORE_LABEL, CameraImage, LabeledScene, LidarCameraSample, RGBDFrame

__all__ = [
    "IGNORE_LABEL",
    "CameraImage",
    "DataReport",
    "FrameError",
    "LabeledScene",
    "LidarCameraSample",
    "RGBDFrame",
    "ScanNetFrames",
    "read_scannet_scene",
    "scannet_split",
]

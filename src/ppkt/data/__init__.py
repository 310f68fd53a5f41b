"""Datasets: readers that turn files into typed frames, samples and labelled scenes."""

from ppkt.data.types import IGNORE_LABEL, CameraImage, LabeledScene, LidarCameraSample, RGBDFrame

__all__ = ["IGNORE_LABEL", "CameraImage", "LabeledScene", "LidarCameraSample", "RGBDFrame"]

"""Losses, one per file."""

from ppkt.losses.point_infonce import PointInfoNCE

__all__ = ["PointInfoNCE"]

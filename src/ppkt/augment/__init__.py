"""Augmentation: point clouds (pretraining and fine-tuning), images with their pairs' pixels, colours.

ppkt.augment.config  the pretraining augmentation settings (``AugmentConfig``)
ppkt.augment.points  rotation, flip, scale, elastic distortion (pretraining); SceneAugmentation
                     (fine-tuning)
ppkt.augment.image   resize, horizontal flip and random resized crop with uv remapping
ppkt.augment.color   colour augmentation of point colours, shared by both
"""

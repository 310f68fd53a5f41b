"""ppkt: pixel-to-point knowledge transfer for 3D pretraining.

The package layout follows the data flow (read top-down):

    ppkt.data       readers -> typed frames and labelled scenes, one registry of formats; synthetic rooms
    ppkt.geometry   back-projection, projection, visibility, voxelisation -> pixel/point pairs
    ppkt.augment    point, image (pairs' pixels remapped) and colour augmentation
    ppkt.teachers   frozen 2D networks + the upsampling feature projection layer
    ppkt.sparse     sparse tensors and sparse convolutions (pure torch, optional spconv)
    ppkt.backbones  SR-UNet / MinkUNet family, projection and segmentation heads
    ppkt.losses     one loss per file (pixel-point InfoNCE, ...)
    ppkt.engine     run machinery of every loop: device/DDP, schedule, log, checkpoints, guards, precision
    ppkt.train      the pretraining run: samples, dataset, batch, sampler, model, loop
    ppkt.eval       fine-tuning, linear probing, limited-label splits, metrics
    ppkt.viz        pictures of what the networks learned
    ppkt.cli        the ``ppkt`` command
"""

__version__ = "0.1.0"

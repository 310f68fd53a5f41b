"""Pictures of what the networks learned: headless, deterministic, files a person opens.

- :mod:`ppkt.viz.colors`: class palettes and a colormap for scalar maps.
- :mod:`ppkt.viz.pca`: features -> RGB through their first three principal components.
- :mod:`ppkt.viz.render`: a z-buffer point rasteriser with deterministic viewpoints.
- :mod:`ppkt.viz.panels`: titled panels, legends and PNG/PLY output.
- :mod:`ppkt.viz.figures`: the figures themselves (feature PCA, similarity, overlays,
  segmentation, training curves).
"""

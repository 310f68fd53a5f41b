"""The pretraining run: typed config and presets, samples (frames -> augmented pairs), dataset,
batch (collation), step sampler, the model, the loop, checkpoints, distributed execution and export
of the pretrained backbone."""

"""The pretraining run: typed config and presets, the sample pipeline, the model, the loop,
checkpoints, distributed execution and export of the pretrained backbone."""

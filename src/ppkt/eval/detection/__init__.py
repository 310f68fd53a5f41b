"""3D object detection downstream: VoteNet on the (pretrained) SR-UNet, its evaluation and loop.

``metrics`` (AP / mAP as VoteNet computes them), ``data`` (detection scenes and batches),
``model`` (the VoteNet head on backbone features), ``loop`` (fine-tuning and evaluation).
See docs/detection.md.
"""

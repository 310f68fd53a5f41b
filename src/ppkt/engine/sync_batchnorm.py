"""Batch norm whose statistics span every process of a distributed run (``sync_batchnorm``).

torch's ``SyncBatchNorm`` takes dense CUDA tensors only; this one normalises the sites of a
:class:`~ppkt.sparse.SparseTensor` on any device (gloo on CPU too). Statistics are the exact mean
and biased variance of the union of all ranks' sites (two all-reduces: sums, then squared
deviations), gradients flow through the all-reduces, and the running statistics get the
unbiased variance, as ``BatchNorm1d`` on the concatenated batch would.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn

from ppkt.sparse import BatchNorm, SparseTensor


class SparseSyncBatchNorm(BatchNorm):
    """:class:`ppkt.sparse.BatchNorm` with statistics all-reduced over the default process group."""

    def forward(self, x: SparseTensor) -> SparseTensor:  # type: ignore[override]
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        feats = x.feats
        c = feats.shape[1]
        count = torch.tensor([float(feats.shape[0])], device=feats.device, dtype=feats.dtype)
        sums = dist_fn.all_reduce(torch.cat([feats.sum(dim=0), count]))
        total = sums[c].detach()
        if float(total) <= 1:
            return super().forward(x)  # the single-site rule of the local batch norm
        mean = sums[:c] / total
        var = dist_fn.all_reduce(((feats - mean) ** 2).sum(dim=0)) / total
        out = (feats - mean) * torch.rsqrt(var + self.eps)
        if self.affine:
            out = out * self.weight + self.bias
        if self.track_running_stats:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * total / (total - 1), alpha=m)
                self.num_batches_tracked.add_(1)
        return x.replace_feats(out)


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every :class:`ppkt.sparse.BatchNorm` inside ``module`` by a
    :class:`SparseSyncBatchNorm` holding the same parameters and statistics (in place)."""
    for name, child in list(module.named_children()):
        if isinstance(child, BatchNorm) and not isinstance(child, SparseSyncBatchNorm):
            synced = SparseSyncBatchNorm(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            ).to(next(iter(child.state_dict().values())).device)
            synced.load_state_dict(child.state_dict())
            synced.train(child.training)
            synced.requires_grad_(any(p.requires_grad for p in child.parameters()) or not child.affine)
            setattr(module, name, synced)
        else:
            convert_sync_batchnorm(child)
    return module

"""The step sampler: which frames each step reads, a pure function of the step number."""

from __future__ import annotations

import torch


class StepBatchSampler(torch.utils.data.Sampler):
    """Batches of ``(index, epoch)`` keys as a pure function of the step number.

    Epoch ``e`` uses a permutation of the dataset drawn from ``(seed, e)``; rank ``r`` of
    ``world_size`` takes every ``world_size``-th item of it (disjoint shards); the last partial
    batch of an epoch is dropped so every rank makes the same number of steps. Starting at
    ``start_step`` resumes the data order exactly where a run stopped.
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        *,
        seed: int,
        total_steps: int,
        start_step: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.total_steps, self.start_step = total_steps, start_step
        self.rank, self.world_size = rank, world_size
        self.steps_per_epoch = (num_items // world_size) // batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"{num_items} frames are fewer than batch_size {batch_size} x {world_size} processes; "
                "lower optim.batch_size or use more data"
            )

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step)

    def batch_for_step(self, step: int, _cache: dict | None = None) -> list[tuple[int, int]]:
        epoch, position = divmod(step, self.steps_per_epoch)
        perm = None if _cache is None else _cache.get(epoch)
        if perm is None:
            perm = torch.randperm(
                self.num_items, generator=torch.Generator().manual_seed(self.seed * 100003 + epoch)
            )
            if _cache is not None:
                _cache.clear()
                _cache[epoch] = perm
        shard = perm[self.rank :: self.world_size]
        chosen = shard[position * self.batch_size : (position + 1) * self.batch_size]
        return [(int(i), epoch) for i in chosen]

    def __iter__(self):
        cache: dict = {}
        for step in range(self.start_step, self.total_steps):
            yield self.batch_for_step(step, cache)

"""The in-memory dataset the object tasks share: decoded images with per-row targets that move with
the pixels when the training split is augmented."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch.utils.data import Dataset

from datakit.data import Preprocess


class AugmentedArrays(Dataset):
    """Images (uint8 NxHxWxC, already at the input size); without augmentation their normalized
    tensors never change and are computed once."""

    def __init__(self, images: np.ndarray, preprocess: Preprocess, transform: Any = None) -> None:
        self.images = images
        self.preprocess = preprocess
        self.transform = transform
        self._ready = preprocess.to_tensor(images) if transform is None else None

    def __len__(self) -> int:
        return len(self.images)

    def reseed(self, seed: int) -> None:
        if self.transform is not None and hasattr(self.transform, "set_random_seed"):
            from datakit.augmentation.targets import reseed

            reseed(self.transform, seed)  # a stream per transform: albumentations' set_random_seed shares one seed

    def augment(self, sample: Any) -> Any:
        """``sample`` (an ``augmentation.targets.Sample``) through the transform, its image checked."""
        from datakit.augmentation.targets import apply

        result = apply(self.transform, sample).sample
        result.image = self.preprocess.check_augmented(result.image)
        return result

"""Augmentation: presets, spec files, the offline writer with lineage, rebalancing, preview.

``targets.py`` is the one place where boxes, labels and masks follow the pixels.
"""

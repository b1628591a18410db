"""Data: the sample layout every data set returns, crops, augmentation and the data sets.

- ``extpose_sdk.data.sample``: the keys, shapes, units and frames of one sample (or one clip of
  T frames), ``collate`` for a ``DataLoader`` and ``make_clips`` to cut sequences into clips.
- ``extpose_sdk.data.inputs``: a batch's model inputs per modality (renders ``skeleton``).
- ``extpose_sdk.data.crops`` / ``augment``: the official crop preprocessing and augmentation.
- ``extpose_sdk.datasets``: every data set (official layouts, synthetic, tar shards, the cache).

Importing this package imports nothing heavy; each module imports what it needs.
"""

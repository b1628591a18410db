"""Every data set of the SDK, in one folder, in the sample layout of ``extpose_sdk.data.sample``.

Build them through the registry (``extpose_sdk.get_registries().dataset.build("3dpw",
root=..., split="test")``) or import the classes from their modules:

- ``base``: ``SequenceReader``, the one base of the indexable sets: sequences of frames, samples
  of single frames or clips of T frames (``make_clips``);
- ``threedpw``, ``freihand``, ``ho3d``: readers of the official layouts (on ``SequenceReader``);
- ``synthetic``: a posed synthetic SMPL / MANO model rendered with OpenCV (on ``SequenceReader``),
  ``synthetic_models``: the synthetic SMPL- / MANO-format model files it renders;
- ``tars``: the official HMR2.0 / HaMeR training shards, streamed (an ``IterableDataset``);
- ``cache``: any of them written once as uint8 crops and arrays, read at memory speed;
- ``files``: reading a user's data-set files safely; ``fixtures``: tiny copies of each layout
  for tests and examples.

See docs/datasets.md for the layouts and where to obtain them.
"""

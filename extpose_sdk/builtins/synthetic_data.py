"""Built-in synthetic data sets: a posed synthetic SMPL / MANO model rendered with OpenCV."""

from extpose_sdk.plugins import hookimpl, lazy


@hookimpl
def extpose_register_datasets(register):
    register(
        "synthetic-body",
        lazy("extpose_sdk.data.synthetic:synthetic_body"),
        "rendered synthetic SMPL-format bodies in smooth random motion, coco17 noisy detections "
        "(no download; root: cache folder for the model file)",
        example="split='train', num_sequences=16, sequence_length=64, clip_length=16",
    )
    register(
        "synthetic-hand",
        lazy("extpose_sdk.data.synthetic:synthetic_hand"),
        "rendered synthetic MANO-format right hands in smooth random motion, openpose_hand21 "
        "noisy detections (no download; root: cache folder for the model file)",
        example="split='test', clip_length=8",
    )

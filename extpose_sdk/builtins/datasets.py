"""Built-in data sets (all in ``extpose_sdk.datasets``): readers of the official 3DPW, FreiHAND,
HO3D and HMR2.0 / HaMeR tar layouts, and the synthetic sets (a posed synthetic SMPL / MANO model
rendered with OpenCV)."""

from extpose_sdk.plugins import hookimpl, lazy


@hookimpl
def extpose_register_datasets(register):
    register(
        "3dpw",
        lazy("extpose_sdk.datasets.threedpw:ThreeDPW"),
        "3DPW from ROOT/sequenceFiles/<split>/*.pkl + imageFiles/ (frames or clips of T)",
        example="root=3DPW, split='test', clip_length=16",
    )
    register(
        "freihand",
        lazy("extpose_sdk.datasets.freihand:FreiHAND"),
        "FreiHAND from ROOT/{training,evaluation}_*.json + <split>/rgb/ (right hands)",
        example="root=FreiHAND, split='evaluation'",
    )
    register(
        "ho3d",
        lazy("extpose_sdk.datasets.ho3d:HO3D"),
        "HO3D v2/v3 from ROOT/{train,evaluation}.txt + <split>/<seq>/{meta,rgb}/ (frames or clips)",
        example="root=HO3D_v3, split='train', clip_length=16",
    )
    register(
        "tar-shards",
        lazy("extpose_sdk.datasets.tars:TarShards"),
        "HMR2.0 / HaMeR training tars ROOT/*.tar (or urls=pattern): <key>.jpg + <key>.data.pyd",
        example="urls='dataset_tars/mpii-train/{000000..000009}.tar', kind='body', resampled=True",
    )
    register(
        "synthetic-body",
        lazy("extpose_sdk.datasets.synthetic:synthetic_body"),
        "rendered synthetic SMPL-format bodies in smooth random motion, coco17 noisy detections "
        "(no download; root: cache folder for the model file)",
        example="split='train', num_sequences=16, sequence_length=64, clip_length=16",
    )
    register(
        "synthetic-hand",
        lazy("extpose_sdk.datasets.synthetic:synthetic_hand"),
        "rendered synthetic MANO-format right hands in smooth random motion, openpose_hand21 "
        "noisy detections (no download; root: cache folder for the model file)",
        example="split='test', clip_length=8",
        data_version=2,  # 2: fingers curl together (synthetic.HAND_SYNERGY)
    )

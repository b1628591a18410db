"""Built-in datasets: readers of the official 3DPW, FreiHAND and HO3D layouts."""

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

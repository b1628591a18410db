"""The official crop: box -> centre/scale/size facts, and keypoints follow the warped image."""

import numpy as np
import pytest

from extpose_sdk.data import crops
from extpose_sdk.modalities import IMAGENET_MEAN, IMAGENET_STD
from extpose_sdk.subjects import HAND


def test_box_to_center_scale_and_square_size():
    center, scale = crops.box_to_center_scale([10, 20, 110, 420])
    np.testing.assert_allclose(center, [60, 220])
    np.testing.assert_allclose(scale, [0.5, 2.0])
    # tall box: the side is its height; wide box: 4/3 of its width
    assert crops.bbox_size_of([0.5, 2.0]) == pytest.approx(400)
    assert crops.bbox_size_of([1.5, 1.0]) == pytest.approx(200 * 1.5 * 4 / 3)
    _, scale = crops.box_to_center_scale([0, 0, 100, 100], rescale=HAND.crop_rescale)
    np.testing.assert_allclose(scale, [1.0, 1.0])
    with pytest.raises(ValueError, match="expected shape"):
        crops.box_to_center_scale([1, 2, 3])


def test_plain_crop_maps_box_square_onto_crop():
    crop = crops.make_crop([100, 50, 250, 450], size=256)  # h=400 >= 4/3 w=200: side 400
    corners = crops.transform_points([[175 - 200, 250 - 200], [175 + 200, 250 + 200]],
                                     crop.transform)
    np.testing.assert_allclose(corners, [[0, 0], [256, 256]], atol=1e-4)
    back = crops.transform_points(corners, crop.inverse)
    np.testing.assert_allclose(back, [[-25, 50], [375, 450]], atol=1e-3)


def _dot_image(h, w, x, y):
    image = np.zeros((h, w, 3), np.uint8)
    image[y - 2:y + 3, x - 2:x + 3] = 255
    return image


@pytest.mark.parametrize("rotation,zoom,flip,translate", [
    (0.0, 1.0, False, (0, 0)), (30.0, 1.0, False, (0, 0)), (0.0, 1.3, True, (0.02, -0.02)),
    (-25.0, 0.8, True, (0, 0)),
])
def test_painted_dot_lands_at_transformed_keypoint(rotation, zoom, flip, translate):
    h, w, dot = 300, 400, (230, 120)
    image = _dot_image(h, w, *dot)
    crop = crops.make_crop([150, 40, 290, 240], image_width=w, rotation=rotation, zoom=zoom,
                           flip=flip, translate=translate)
    patch = crops.warp(image, crop, anti_alias=False)[..., 0].astype(np.float64)
    ys, xs = np.nonzero(patch > 0)
    found = np.array([(xs * patch[ys, xs]).sum(), (ys * patch[ys, xs]).sum()]) / patch[ys, xs].sum()
    expected = crops.transform_points([dot], crop.transform)[0]
    np.testing.assert_allclose(found, expected, atol=0.75)
    if flip:  # mirrored: the dot right of the centre lands left of the crop centre
        assert expected[0] < crop.size / 2


def test_normalize_bgr_to_rgb_imagenet_and_back():
    patch = np.zeros((4, 4, 3), np.uint8)
    patch[..., 0] = 255  # blue in BGR
    x = crops.normalize(patch, bgr=True)
    assert x.shape == (3, 4, 4) and x.dtype == np.float32
    np.testing.assert_allclose(x[2, 0, 0], (255 - IMAGENET_MEAN[2]) / IMAGENET_STD[2], rtol=1e-6)
    np.testing.assert_allclose(x[0, 0, 0], -IMAGENET_MEAN[0] / IMAGENET_STD[0], rtol=1e-6)
    np.testing.assert_array_equal(crops.denormalize(x), patch[..., ::-1])


def test_anti_alias_blur_only_when_downsampling_a_lot():
    small = crops.make_crop([0, 0, 150, 200])
    large = crops.make_crop([0, 0, 600, 800])
    assert crops.needs_blur(small) == 0.0 and crops.needs_blur(large) > 0


def test_crop_entries_give_sample_layout(tmp_path):
    import cv2

    image = _dot_image(120, 160, 80, 60)
    path = tmp_path / "im.jpg"
    cv2.imwrite(str(path), image)
    out = crops.crop_entries(path, [40, 20, 120, 100], np.array([[80, 60, 1.0]]))
    assert out["rgb"].shape == (3, 256, 256)
    assert out["crop_transform"].shape == (2, 3)
    np.testing.assert_allclose(out["keypoints_2d"][0].numpy(), [0, 0, 1], atol=1e-5)
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        crops.crop_entries(tmp_path / "missing.jpg", [0, 0, 10, 10])

"""Segmentation overlay PNGs: palette colours, unblended ignore pixels, panel layout, file round trip."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from hrnet_train.data.seg_cityscapes import CITYSCAPES_CLASSES, CityscapesDataset
from hrnet_train.evaluation.seg_overlay import IGNORE_COLOR, blend, colorize, overlay_panel, save_panel
from hrnet_train.normalization import denormalize
from hrnet_train.seg_classes import IGNORE_LABEL


def test_colorize_and_blend_use_the_palette() -> None:
    labels = np.array([[0, 11], [13, IGNORE_LABEL]])
    colours = colorize(labels, CITYSCAPES_CLASSES)
    assert colours[0, 0].tolist() == [128, 64, 128] and colours[0, 1].tolist() == [220, 20, 60]  # road, person
    assert colours[1, 0].tolist() == [0, 0, 142] and colours[1, 1].tolist() == list(IGNORE_COLOR)  # car, ignore
    image = np.full((2, 2, 3), 100, np.uint8)
    mixed = blend(image, labels, CITYSCAPES_CLASSES, alpha=0.5)
    assert mixed[0, 0].tolist() == [114, 82, 114]  # (100 + 128) / 2, (100 + 64) / 2, ...
    assert mixed[1, 1].tolist() == [100, 100, 100]  # ignored pixels are not blended
    with pytest.raises(ValueError, match="label values outside 0..18 and 255"):
        colorize(np.array([[19]]), CITYSCAPES_CLASSES)


def test_panel_of_the_synthetic_cityscapes_sample(cityscapes_synthetic: Path, tmp_path: Path) -> None:
    item = CityscapesDataset(cityscapes_synthetic, "val", train=False)[1]  # the 512x256 sample
    image = denormalize(item["image"].numpy())
    label = item["label"].numpy()
    prediction = np.where(label == IGNORE_LABEL, 0, label)
    panel = overlay_panel(image, label, prediction, CITYSCAPES_CLASSES)
    assert panel.shape[1] == 3 * 512 and panel.shape[0] > 256 and panel.dtype == np.uint8
    np.testing.assert_array_equal(panel[100:, :512][: 256 - 100], image[100:])  # image view untouched below its title
    written = save_panel(tmp_path / "out" / "panel.png", panel)
    np.testing.assert_array_equal(cv2.cvtColor(cv2.imread(str(written)), cv2.COLOR_BGR2RGB), panel)
    assert overlay_panel(image, None, prediction, CITYSCAPES_CLASSES).shape[1] == 2 * 512

"""Face keypoint sets: flip pairs equal the spec's MATCHED_PARTS lists, NME normalisers, optional sigmas/halves."""

from __future__ import annotations

import numpy as np
import pytest

from hrnet_train.keypoints import MissingSigmasError, load_keypoint_set

# Spec A.7 (official MATCHED_PARTS): 300W, COFW and AFLW 1-based, WFLW 0-based.
SPEC_PAIRS = {
    "face300w68": (1, [(1, 17), (2, 16), (3, 15), (4, 14), (5, 13), (6, 12), (7, 11), (8, 10), (18, 27), (19, 26),
                       (20, 25), (21, 24), (22, 23), (32, 36), (33, 35), (37, 46), (38, 45), (39, 44), (40, 43),
                       (41, 48), (42, 47), (49, 55), (50, 54), (51, 53), (62, 64), (61, 65), (68, 66), (59, 57),
                       (60, 56)]),
    "wflw98": (0, [(0, 32), (1, 31), (2, 30), (3, 29), (4, 28), (5, 27), (6, 26), (7, 25), (8, 24), (9, 23), (10, 22),
                   (11, 21), (12, 20), (13, 19), (14, 18), (15, 17), (33, 46), (34, 45), (35, 44), (36, 43), (37, 42),
                   (38, 50), (39, 49), (40, 48), (41, 47), (60, 72), (61, 71), (62, 70), (63, 69), (64, 68), (65, 75),
                   (66, 74), (67, 73), (55, 59), (56, 58), (76, 82), (77, 81), (78, 80), (87, 83), (86, 84), (88, 92),
                   (89, 91), (95, 93), (96, 97)]),
    "cofw29": (1, [(1, 2), (5, 7), (3, 4), (6, 8), (9, 10), (11, 12), (13, 15), (17, 18), (14, 16), (19, 20), (23, 24)]),
    "aflw19": (1, [(1, 6), (2, 5), (3, 4), (7, 12), (8, 11), (9, 10), (13, 15), (16, 18)]),
}
# Spec A.8: 0-based normalising indices (AFLW: the box size).
SPEC_NME = {"face300w68": (36, 45), "wflw98": (60, 72), "cofw29": (8, 9), "aflw19": None}
SIZES = {"face300w68": 68, "wflw98": 98, "cofw29": 29, "aflw19": 19}


@pytest.mark.parametrize("name", sorted(SPEC_PAIRS))
def test_flip_pairs_equal_the_spec_lists(name: str) -> None:
    kps = load_keypoint_set(name)
    base, pairs = SPEC_PAIRS[name]
    expected = {frozenset((a - base, b - base)) for a, b in pairs}
    assert kps.num_joints == SIZES[name] and kps.name == name
    assert len(kps.flip_pairs) == len(pairs) and {frozenset(p) for p in kps.flip_pairs} == expected
    # Written (left, right) like the pose sets: the spec's first point (the subject's right) comes second.
    assert {(a, b) for b, a in ((x - base, y - base) for x, y in pairs)} == set(kps.flip_pairs)
    index = kps.flip_index
    assert np.array_equal(index[index], np.arange(kps.num_joints))  # an involution


@pytest.mark.parametrize("name", sorted(SPEC_NME))
def test_nme_normaliser_and_no_sigmas_or_halves(name: str) -> None:
    kps = load_keypoint_set(name)
    expected = SPEC_NME[name]
    assert kps.nme_normalizer is not None
    assert kps.nme_normalizer.points == expected and kps.nme_normalizer.uses_box_size == (expected is None)
    assert kps.upper_body_ids == () and kps.lower_body_ids == () and not kps.has_sigmas
    with pytest.raises(MissingSigmasError, match=f"keypoint set '{name}' defines no OKS sigmas"):
        _ = kps.sigmas
    assert all(0 <= a < kps.num_joints and 0 <= b < kps.num_joints for a, b in kps.skeleton)


def test_300w_names_follow_the_standard_groups() -> None:
    kps = load_keypoint_set("face300w68")
    assert kps.names[0] == "jaw_01" and kps.names[16] == "jaw_17" and kps.names[17] == "brow_right_01"
    assert kps.names[36] == "eye_right_01" and kps.names[45] == "eye_left_04" and kps.names[67] == "mouth_inner_08"
    assert (41, 36) in kps.skeleton and (16, 0) not in kps.skeleton  # eyes closed, jaw open


def test_pose_sets_keep_sigmas_and_bad_normaliser_is_reported() -> None:
    assert load_keypoint_set("coco17").has_sigmas and load_keypoint_set("coco17").nme_normalizer is None
    spec = {"names": ["a", "b"], "flip_pairs": [], "skeleton": [], "nme_normalizer": ["a", "a"]}
    with pytest.raises(ValueError, match="nme_normalizer: joint 'a' paired with itself"):
        load_keypoint_set(spec)
    with pytest.raises(ValueError, match="nme_normalizer: expected a pair of joints"):
        load_keypoint_set(spec | {"nme_normalizer": "boxsize"})

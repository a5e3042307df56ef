"""Action-Unit regions: the table, token masks (border-robust, deterministic), boxes and pooling."""

import numpy as np
import pytest
import torch

from emo_llama.expert import (
    AU_REGIONS,
    AU_TABLE,
    au_pool,
    au_region_boxes,
    au_region_masks,
    au_region_polygons,
)
from emo_llama.expert.tiny import mean_face_68

REQUIRED = ("AU1", "AU2", "AU4", "AU6", "AU9", "AU12", "AU15", "AU17", "AU20", "AU25", "AU26")


def test_table_covers_the_required_aus_with_valid_landmark_indices():
    assert set(REQUIRED) <= set(AU_REGIONS)
    for region in AU_TABLE:
        assert region.description and 1 <= len(region.anchors) <= 2
        assert all(0 <= i < 68 for anchor in region.anchors for i in anchor)
        assert all(s > 0 for s in region.size)


def _face(batch=1):
    return mean_face_68()[None].repeat(batch, 1, 1)


def test_regions_sit_where_the_face_parts_are():
    face = _face()
    boxes = au_region_boxes(face)[0]
    centre_y = {name: float((boxes[i, 1] + boxes[i, 3]) / 2) for i, name in enumerate(AU_REGIONS)}
    eye_y, mouth_y = float(face[0, 36:48, 1].mean()), float(face[0, 48:68, 1].mean())
    assert centre_y["AU1"] < eye_y and centre_y["AU2"] < eye_y  # brows above the eyes
    assert eye_y < centre_y["AU6"] < mouth_y  # cheeks between eyes and mouth
    assert abs(centre_y["AU25"] - mouth_y) < 0.03 and centre_y["AU17"] > mouth_y  # lips, chin
    # bilateral regions have two rectangles, mirrored about the face's vertical midline
    left, right = au_region_polygons(face)[0]["AU12"]
    assert left.mean(0)[0] < 0.5 < right.mean(0)[0]


def test_masks_shape_nonempty_and_local():
    masks = au_region_masks(_face(2), (7, 7))
    assert masks.shape == (2, len(AU_REGIONS), 49) and masks.dtype == torch.bool
    assert masks.any(-1).all()
    assert (masks.sum(-1) < 49 // 2).all()  # local, not the whole face
    brow, mouth = AU_REGIONS.index("AU1"), AU_REGIONS.index("AU25")
    assert not (masks[0, brow] & masks[0, mouth]).any()


def test_masks_follow_a_tilted_head():
    face = _face()
    angle = torch.tensor(0.5)
    rot = torch.stack([torch.stack([angle.cos(), -angle.sin()]), torch.stack([angle.sin(), angle.cos()])])
    tilted = (face - 0.5) @ rot.T + 0.5
    up, tilt = au_region_polygons(face)[0]["AU17"][0], au_region_polygons(tilted)[0]["AU17"][0]
    np.testing.assert_allclose(tilt.mean(0), ((torch.tensor(up.mean(0)) - 0.5) @ rot.T + 0.5).numpy(), atol=1e-5)


def test_border_and_degenerate_landmarks_still_give_one_token_per_region():
    shifted = _face() + torch.tensor([0.45, 0.4])  # face half outside the crop (bottom-right)
    collapsed = torch.full((1, 68, 2), 0.02)  # every landmark on one point near the corner
    far = _face() * 0.1 - 2.0  # entirely outside the crop
    for lm in (shifted, collapsed, far):
        masks = au_region_masks(lm, (7, 7))
        assert masks.any(-1).all()
        assert torch.equal(masks, au_region_masks(lm, (7, 7)))  # deterministic
    assert au_region_masks(far, (7, 7))[0, :, 0].all()  # clipped to the nearest (corner) token


def test_custom_token_centres_move_the_masks():
    face = _face()
    grid = (4, 4)
    default = au_region_masks(face, grid)
    centres = torch.stack(torch.meshgrid(torch.linspace(0.3, 0.7, 4), torch.linspace(0.3, 0.7, 4),
                                         indexing="xy"), -1).reshape(-1, 2)
    moved = au_region_masks(face, grid, token_centres=centres)
    assert moved.shape == default.shape and not torch.equal(moved, default)
    with pytest.raises(ValueError, match="do not match grid"):
        au_region_masks(face, (7, 7), token_centres=centres)
    with pytest.raises(ValueError, match=r"\(B, 68, 2\)"):
        au_region_masks(torch.zeros(1, 5, 2), grid)


def test_au_pool_averages_the_masked_tokens():
    tokens = torch.arange(2 * 4 * 3, dtype=torch.float32).view(2, 4, 3)
    masks = torch.zeros(2, 2, 4, dtype=torch.bool)
    masks[:, 0, [1, 3]] = True
    masks[:, 1, 2] = True
    pooled = au_pool(tokens, masks)
    torch.testing.assert_close(pooled[:, 0], (tokens[:, 1] + tokens[:, 3]) / 2)
    torch.testing.assert_close(pooled[:, 1], tokens[:, 2])

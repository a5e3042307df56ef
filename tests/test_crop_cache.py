import json
import shutil

import numpy as np
import pytest
from PIL import Image

from emo_llama.faces import samples
from emo_llama.faces.cache import cache_crops, load_cached_crops


@pytest.fixture()
def media(tmp_path, astronaut):
    folder = tmp_path / "media"
    folder.mkdir()
    Image.fromarray(astronaut).save(folder / "astronaut.png")
    Image.fromarray(samples.no_face_image()).save(folder / "coffee.jpg")
    shutil.copy(samples.carphone_video(), folder / "carphone.mp4")
    (folder / "broken.mp4").write_bytes(b"")
    return sorted(folder.iterdir())


def test_cache_crops_everything_once_and_summarises(tmp_path, media, cropper):
    out = tmp_path / "crops"
    summary = cache_crops(media, out, cropper, progress=False)
    assert (summary.items, summary.cropped, summary.unreadable) == (4, 3, 1)
    assert summary.frames == 1 + 1 + 5 and summary.faces_found == 6 and summary.faces_missing == 1
    assert any("coffee" in m for m in summary.missing_examples)
    assert "broken.mp4" in summary.errors[0]
    video = next(p for p in out.glob("*.npz") if "carphone" in p.name)
    arrays = load_cached_crops(video)
    assert arrays["crops"].shape == (5, 224, 224, 3) and arrays["found"].all()
    assert json.loads((out / "summary.json").read_text())["faces_found"] == 6

    again = cache_crops(media, out, cropper, progress=False)
    assert again.skipped_existing == 3 and again.cropped == 0 and again.faces_found == 6


def test_interrupted_run_leaves_no_partial_file_and_resumes(tmp_path, media, cropper, monkeypatch):
    out = tmp_path / "crops"
    real_crop = cropper.crop
    calls = {"n": 0}

    def crop_then_die(frames):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C on the second item
        return real_crop(frames)

    monkeypatch.setattr(cropper, "crop", crop_then_die)
    with pytest.raises(KeyboardInterrupt):
        cache_crops(media, out, cropper, progress=False)
    monkeypatch.setattr(cropper, "crop", real_crop)
    assert len(list(out.glob("*.npz"))) == 1
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]

    summary = cache_crops(media, out, cropper, progress=False)
    assert summary.skipped_existing == 1 and summary.cropped == 2
    first = sorted(out.glob("*.npz"))[0]
    assert np.isfinite(load_cached_crops(first)["probs"]).any() or "coffee" in first.name

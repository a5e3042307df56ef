"""No silent guesses: media without a face and unreadable files in a batch, on the `tiny` stack (real MTCNN)."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from PIL import Image

from emo_llama.data import parse_answer
from emo_llama.faces.video import MediaError
from emo_llama.features import FeatureExtractor
from emo_llama.model import EmoLlama, EmoLlamaConfig, get_stack
from emo_llama.model.answers import NO_FACE_TEXT, UNREADABLE_TEXT, Answer

CLASSES = ["neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger"]
QUESTION = "What emotion does the face show?"


@pytest.fixture(scope="module")
def stack():
    return get_stack("tiny")


@pytest.fixture(scope="module")
def model(stack):
    torch.manual_seed(0)
    return EmoLlama(EmoLlamaConfig(stack="tiny", context_dim=16, fim_dim=16, fim_heads=2, num_queries=4,
                                   lora_r=4, lora_alpha=8), stack).eval()


@pytest.fixture()
def extractor(stack, tmp_path):
    return FeatureExtractor.from_stack(stack, max_frames=3, cache_dir=tmp_path / "cache", device="cpu")


def _save(path, image) -> str:
    Image.fromarray(image).save(path)
    return str(path)


@pytest.fixture()
def face_image(tmp_path):
    from emo_llama.faces.samples import astronaut

    return _save(tmp_path / "astronaut.png", astronaut())


def _write_video(path, frames, size: int = 256) -> str:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=1)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            image = np.asarray(Image.fromarray(frame).convert("RGB").resize((size, size)))
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return str(path)


def test_no_face_image_and_noise_get_no_class(model, extractor, face_image, tmp_path):
    from sklearn.datasets import load_sample_images

    landscape = _save(tmp_path / "china.jpg", load_sample_images().images[0])
    noise = _save(tmp_path / "noise.png", np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8))
    answers = model.answer([face_image, landscape, noise], [QUESTION] * 3, extractor=extractor, max_new_tokens=3)
    assert all(isinstance(a, Answer) and isinstance(a, str) for a in answers)
    face, *no_face = answers
    assert face.answered and face.face_found and face.frames_without_face == 0 and face.reason == ""
    for a, path in zip(no_face, (landscape, noise)):
        assert not a.answered and not a.face_found and a.path == path
        assert a.text == NO_FACE_TEXT and "no face" in a.reason and (a.frames, a.frames_without_face) == (1, 1)
        assert parse_answer(a, CLASSES) is None
    # The items without a face do not change the others' answers.
    assert model.answer([face_image], [QUESTION], extractor=extractor, max_new_tokens=3)[0] == face
    # Scoring a dataset of faces may ask anyway: the answer is the model's, and still flagged.
    forced = model.answer([landscape], [QUESTION], extractor=extractor, require_face=False, max_new_tokens=3)[0]
    assert forced.answered and not forced.face_found and forced.text != NO_FACE_TEXT


def test_video_frames_without_a_face_are_counted(model, extractor, tmp_path):
    from emo_llama.faces.samples import astronaut, no_face_image

    video = _write_video(tmp_path / "mixed.mp4", [astronaut(), no_face_image(), astronaut()])
    a = model.answer([video], [QUESTION], extractor=extractor, max_new_tokens=3)[0]
    assert a.answered and a.face_found
    assert (a.frames, a.frames_without_face) == (3, 1) and "1 of 3 frames had no face" in a.reason


def test_unreadable_files_do_not_stop_the_batch(model, extractor, face_image, tmp_path):
    from emo_llama.faces.samples import carphone_video

    good = carphone_video().read_bytes()
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good[: len(good) // 2])
    missing = tmp_path / "missing.png"
    bad = [str(corrupt), str(empty), str(truncated), str(missing)]
    paths = [face_image, *bad, str(carphone_video())]
    answers = model.answer(paths, [QUESTION] * len(paths), extractor=extractor, max_new_tokens=3)
    assert len(answers) == len(paths)
    clean = model.answer([face_image, str(carphone_video())], [QUESTION] * 2, extractor=extractor,
                         max_new_tokens=3)
    assert [answers[0], answers[-1]] == clean and all(a.answered and a.error is None for a in clean)
    for a, path in zip(answers[1:-1], bad):
        assert not a.answered and a.text == UNREADABLE_TEXT and a.path == path
        assert path in a.error and a.frames == 0 and parse_answer(a, CLASSES) is None
    assert "zero-length" in answers[2].error and "no such file" in answers[4].error


def test_extract_many_raises_or_records_by_path(extractor, face_image, tmp_path):
    missing = str(tmp_path / "gone.mp4")
    with pytest.raises(MediaError, match="gone.mp4"):
        extractor.extract_many([face_image, missing], progress=False)
    errors: dict[str, str] = {}
    feats = extractor.extract_many([missing, face_image], progress=False, errors=errors)
    assert feats[0] is None and feats[1] is not None and list(errors) == [missing]


def test_answers_pickle_with_their_facts():
    import pickle

    a = Answer("happiness", face_found=True, frames=4, frames_without_face=1, reason="1 of 4", path="v.mp4")
    b = pickle.loads(pickle.dumps(a))
    assert b == "happiness" and b.info() == a.info() and b.as_dict()["text"] == "happiness"


def test_a_training_run_lists_unreadable_samples_and_goes_on(tmp_path, monkeypatch):
    """RAF-DB layout with one corrupt training image and one empty test image: the run finishes, both are
    counted and listed by path in metrics.json, the test one is scored as wrong, not dropped."""
    import json
    import sys
    from pathlib import Path

    from emo_llama.train import TrainConfig, run

    sys.path.insert(0, str(Path(__file__).parent))
    from fixtures import fer_layouts as fx

    monkeypatch.setenv("EMO_LLAMA_MODEL_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "RAF-DB"
    fx.write_rafdb(root)
    images = root / "Image" / "aligned"
    corrupt, empty = images / "train_00002_aligned.jpg", images / "test_0001_aligned.jpg"
    corrupt.write_bytes(b"not a jpeg")
    empty.write_bytes(b"")
    cfg = TrainConfig(dataset="rafdb", data_root=str(root), stack="tiny", instruction_types=("category",),
                      model_options={"context_dim": 16, "fim_dim": 16, "fim_heads": 2, "landmark_hidden": 16,
                                     "num_queries": 4},
                      lora_r=4, batch_size=2, max_steps=1, align_steps=0, zero_shot=False, max_new_tokens=3,
                      output_dir=str(tmp_path / "run"), progress=False, device="cpu")
    lines: list[str] = []
    run(cfg, log=lines.append)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    items = {d["path"]: d for d in metrics["unreadable"]["items"]}
    assert metrics["unreadable"]["count"] == 2 and set(items) == {str(corrupt), str(empty)}
    assert items[str(corrupt)]["split"] == "train" and items[str(empty)]["split"] == "test"
    assert str(empty) in items[str(empty)]["error"]
    details = json.loads((tmp_path / "run" / "eval_details.json").read_text())["trained"]
    assert details["n"] == 2 and details["predictions"][0] is None  # the empty test image: wrong, not dropped
    # The fixture's images are flat grey squares: no face in any of them, counted per split.
    assert metrics["no_face"]["train"] == 2 and metrics["no_face"]["test"] == 1
    assert any("could not be read" in line for line in lines)
    assert lines[-1].startswith("== run finished") and "unreadable media: 2" in lines[-1]

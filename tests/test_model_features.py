"""The frozen-feature cache on the `tiny` stack with real media (MTCNN crops, tiny encoders)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import emo_llama.expert.tiny  # noqa: E402, F401
from emo_llama.features import FeatureExtractor, MediaFeatures
from emo_llama.model import EmoLlama, EmoLlamaConfig, get_stack


@pytest.fixture(scope="module")
def tiny_stack():
    return get_stack("tiny")


def test_cache_miss_then_hit_gives_identical_features(tmp_path, tiny_stack):
    from emo_llama.faces.samples import astronaut, carphone_video

    image = tmp_path / "astronaut.png"
    Image.fromarray(astronaut()).save(image)
    extractor = FeatureExtractor.from_stack(tiny_stack, max_frames=3, cache_dir=tmp_path / "cache", device="cpu")
    first = extractor(image)
    video = extractor(carphone_video())
    assert (extractor.misses, extractor.hits) == (2, 0)
    again = extractor(image)
    assert (extractor.misses, extractor.hits) == (2, 1)
    for key, value in first.tensors().items():
        assert torch.equal(value, again.tensors()[key]), key
    assert first.agr == again.agr and first.agr.startswith("According to the specific question")
    assert first.num_frames == 1 and video.num_frames == 3
    assert first.vision_tokens.shape == (1, 16, 32) and first.face_tokens.shape == (1, 16, 32)
    assert first.au_masks.dtype == torch.bool and first.landmarks_68.shape == (1, 68, 2)
    assert bool(first.face_found[0])
    # A different crop setting is a different cache entry.
    other = FeatureExtractor.from_stack(tiny_stack, max_frames=3, margin=0.2, cache_dir=tmp_path / "cache")
    assert other.cache_path(image) != extractor.cache_path(image)
    # The cache key follows the content, not the file name.
    copy = tmp_path / "copy.png"
    copy.write_bytes(image.read_bytes())
    assert extractor.cache_path(copy) == extractor.cache_path(image)


def test_extraction_leaves_the_global_rng_alone(tmp_path, tiny_stack):
    # A cold cache must not change what follows (training draws dropout masks from this RNG).
    from emo_llama.faces.samples import astronaut

    image = tmp_path / "astronaut.png"
    Image.fromarray(astronaut()).save(image)
    extractor = FeatureExtractor.from_stack(tiny_stack, max_frames=3, cache_dir=tmp_path / "cache", device="cpu")
    torch.manual_seed(0)
    expected = torch.rand(4)
    for _ in ("cold", "warm"):
        torch.manual_seed(0)
        extractor(image)
        assert torch.equal(torch.rand(4), expected)
    assert (extractor.misses, extractor.hits) == (1, 1)


def test_no_face_falls_back_to_the_centre(tmp_path, tiny_stack):
    from emo_llama.faces.samples import no_face_image

    extractor = FeatureExtractor.from_stack(tiny_stack, use_cache=False, device="cpu")
    feats = extractor.extract_frames([np.ascontiguousarray(no_face_image())])
    assert not bool(feats.face_found[0]) and feats.agr == ""
    assert torch.isfinite(feats.vision_tokens).all()


def test_model_answers_media_paths_end_to_end(tmp_path, tiny_stack):
    from emo_llama.faces.samples import astronaut, carphone_video

    image = tmp_path / "a.png"
    Image.fromarray(astronaut()).save(image)
    torch.manual_seed(0)
    model = EmoLlama(EmoLlamaConfig(stack="tiny", context_dim=16, fim_dim=16, fim_heads=2, num_queries=4,
                                    lora_r=4, lora_alpha=8), tiny_stack)
    extractor = FeatureExtractor.from_stack(tiny_stack, max_frames=2, cache_dir=tmp_path / "c", device="cpu")
    answers = model.answer([image, carphone_video()], ["What emotion?", "What emotion?"], extractor=extractor,
                           max_new_tokens=3)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    assert [(a.answered, a.face_found, a.frames) for a in answers] == [(True, True, 1), (True, True, 2)]
    loaded = MediaFeatures.load(extractor.cache_path(image))
    assert loaded.num_frames == 1


def test_au_masks_follow_the_experts_token_centres(tmp_path, monkeypatch):
    """The cached AU masks must place face tokens where the expert says they sit on the crop
    (face-api's receptive-field centres are not the cells of an even grid)."""
    from emo_llama.expert.au import au_region_masks
    from emo_llama.expert.tiny import TinyExpert
    from emo_llama.faces.samples import astronaut

    shifted = TinyExpert.default_token_centres
    monkeypatch.setattr(TinyExpert, "default_token_centres", lambda self: (shifted(self) * 0.5 + 0.4).clamp(0, 1))
    stack = get_stack("tiny")
    extractor = FeatureExtractor.from_stack(stack, cache_dir=tmp_path / "cache", device="cpu")
    feats = extractor.extract_frames([astronaut()])
    out = stack.expert(extractor.crops([astronaut()])[0])
    assert torch.equal(feats.au_masks, out.au_masks())
    assert not torch.equal(feats.au_masks, au_region_masks(out.landmarks_68, tuple(out.grid)))


def test_vision_input_face_makes_the_vision_tokens_follow_the_face_not_the_frame(tmp_path):
    """The offline stack's vision encoder reads the face crop: the same face in two different frames
    gives (almost) the same vision tokens, while whole-frame tokens differ."""
    import numpy as np

    from emo_llama.faces.samples import astronaut
    from emo_llama.features import FeatureExtractor
    from emo_llama.model import get_stack

    stack = get_stack("tiny")
    face = astronaut()
    framed = np.full((1000, 1000, 3), 40, np.uint8)
    framed[200:712, 300:812] = face
    tokens = {}
    for mode in ("face", "frame"):
        extractor = FeatureExtractor.from_stack(stack, cache_dir=tmp_path / mode, device="cpu", use_cache=False,
                                                stack_options={"vision_input": mode})
        a, b = (extractor.extract_frames([img]).vision_tokens for img in (face, framed))
        tokens[mode] = float((a - b).abs().mean() / a.abs().mean())
    assert tokens["face"] < 0.25 * tokens["frame"], tokens
    assert get_stack("offline", encoders=False).options["vision_input"] == "face"

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


def _gradient_frame(h: int, w: int) -> np.ndarray:
    """A non-square frame with content everywhere (a squash, a crop and a pad all change it differently)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, (x * y) % 251], axis=-1).astype(np.uint8)


@pytest.mark.parametrize("h, w, new, offset", [(300, 500, (373, 224), (74, 0)), (500, 300, (224, 373), (0, 74)),
                                               (30, 50, (373, 224), (74, 0))])
def test_frames_keep_their_aspect_shortest_edge_bicubic_then_centre_crop(h, w, new, offset):
    """LLaMA-VID's CLIP processor: shortest edge -> 224 (bicubic), long edge int(224 * long / short), centre crop."""
    from transformers import CLIPImageProcessorPil

    from emo_llama.features.extractor import square_frame

    frame = _gradient_frame(h, w)
    left, top = offset
    expected = np.asarray(Image.fromarray(frame).resize(new, Image.BICUBIC))[top: top + 224, left: left + 224]
    out = square_frame(frame, 224)
    assert out.shape == (224, 224, 3) and np.array_equal(out, expected)
    reference = CLIPImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224},
                                      do_rescale=False, do_normalize=False)
    assert np.array_equal(out, reference(frame, return_tensors="np")["pixel_values"][0].transpose(1, 2, 0))


def test_a_still_image_is_padded_to_a_square_with_the_encoders_mean_colour():
    """LLaMA-VID's image_aspect_ratio="pad": centred on a square of the mean colour, then resized; nothing cut off."""
    from emo_llama.features.extractor import square_frame

    frame = _gradient_frame(30, 50)
    fill = (122, 116, 104)   # CLIP's mean as LLaMA-VID writes it: int(255 * mean)
    square = np.empty((50, 50, 3), np.uint8)
    square[:] = fill
    square[10:40] = frame
    expected = np.asarray(Image.fromarray(square).resize((224, 224), Image.BICUBIC))
    assert np.array_equal(square_frame(frame, 224, fill), expected)


def test_the_vision_encoder_reads_whole_frames_unsquashed(tmp_path, tiny_stack):
    """extract_uncached: a video frame is cropped and an image file padded, at the encoder's input size (64)."""
    from emo_llama.features.extractor import square_frame

    frame = _gradient_frame(120, 200)
    extractor = FeatureExtractor.from_stack(tiny_stack, use_cache=False, device="cpu")
    crops, _ = extractor.crops([frame])
    for still in (False, True):
        fill = (127, 127, 127) if still else None   # TinyViT's mean 0.5
        expected = torch.from_numpy(square_frame(frame, 64, fill).copy()).permute(2, 0, 1).float() / 255
        assert torch.equal(extractor.vision_images([frame], crops, still=still)[0], expected)
    cropped = extractor.vision_images([frame], crops)[0]
    manual = np.asarray(Image.fromarray(frame).resize((106, 64), Image.BICUBIC))[:, 21:85]   # 64 * 200 / 120 = 106
    assert torch.equal(cropped, torch.from_numpy(manual.copy()).permute(2, 0, 1).float() / 255)
    image = tmp_path / "wide.png"   # an image file is a still: its frame is padded
    Image.fromarray(frame).save(image)
    padded = extractor.vision_images([frame], crops, still=True)
    with torch.no_grad():
        assert torch.equal(extractor.extract_uncached(image).vision_tokens, tiny_stack.vision(padded).float())

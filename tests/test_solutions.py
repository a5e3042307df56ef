"""The worked solutions of notebooks 01-05 (notebooks/solutions/) run, and find what their docstrings say.

Cheap on purpose: bundled real photos and the carphone video for 01/02, small random modules for 03, hand-made
samples for 04, the tiny stack on synthetic features for 05 (about 20 s together on 2 CPU cores, offline).
06's solutions are run by tests/test_ablations.py.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

SOLUTIONS = Path(__file__).resolve().parents[1] / "notebooks" / "solutions"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"solutions_{name}", SOLUTIONS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_every_notebook_points_at_its_solutions():
    import nbformat

    for path in sorted(SOLUTIONS.parent.glob("[0-9][0-9]_*.ipynb")):
        last = nbformat.read(path, as_version=4).cells[-1]
        assert last.cell_type == "markdown" and last.source.startswith("## Exercises"), path.name
        assert f"notebooks/solutions/{path.stem}.py" in last.source, path.name
        assert (SOLUTIONS / f"{path.stem}.py").exists(), path.name


def test_01_face_cropping():
    answers = load("01_face_cropping").solve()
    rows = answers["exercise_1"]["rows"]
    # The margin never moves MTCNN's box; the crop's side is the box's longer side times (1 + margin).
    assert all(r["box"] == rows[0]["box"] for r in rows)
    for r in rows:
        assert r["crop_side"] == pytest.approx(r["box_side"] * (1 + r["margin"]), abs=1.5)
    # With the expert's window fixed at 1/1.5, P(female) falls as the margin grows, and the call flips at 1.0;
    # margin 0 cuts into the face (worst landmark far off), margin 0.5 is what the window was set for.
    p_female = [r["default"]["p_female"] for r in rows]
    assert p_female == sorted(p_female, reverse=True)
    by_margin = {r["margin"]: r for r in rows}
    assert by_margin[0.5]["default"]["gender"] == "female" and by_margin[1.0]["default"]["gender"] == "male"
    assert by_margin[0.0]["default"]["worst_error_iod"] > 2 * by_margin[0.5]["default"]["worst_error_iod"]
    # A window matched to the margin (face_fraction = 1 / (1 + margin)) fixes every margin.
    assert all(r["matched"]["gender"] == "female" and r["matched"]["worst_error_iod"] < 0.1 for r in rows)

    gray = answers["exercise_2"]
    assert gray["found"] and gray["prob"] > 0.99
    assert 0 <= min(gray["box"]) and max(gray["box"]) <= 48  # in the 48 px frame's own pixels
    assert gray["crop_shape"] == (224, 224, 3) and gray["gray_copied_to_rgb"] and gray["upscale"] > 4
    assert gray["expert_gray48"]["gender"] == "female"
    assert gray["expert_gray48"]["p_female"] < gray["expert_colour"]["p_female"]

    assert answers["exercise_3"] == {"fps1": 5, "fps2": 9, "fps1_max3": 3, "exact_4s_fps1": 4}


def test_02_facial_priors():
    answers = load("02_facial_priors").solve()
    one = answers["exercise_1"]
    assert one["errors_flip_average"].shape == (2, 5)
    assert (one["errors_flip_average"] < 0.1).all()
    assert one["errors_flip_average"].mean() < one["errors_single_pass"].mean()

    two = answers["exercise_2"]
    assert two["flip_average"]["max_diff_with_swap"] < 1e-5  # mirror-symmetric by construction
    assert two["flip_average"]["mean_diff_without_swap"] > 0.1  # forgetting IBUG_MIRROR swaps left and right
    assert 1e-3 < two["single_pass"]["max_diff_with_swap"] < 0.05  # the net alone is only nearly symmetric

    three = answers["exercise_3"]
    for counts in three["tokens_per_region"].values():
        assert min(counts.values()) >= 1  # no region is ever empty
        assert max(counts, key=counts.get) == "AU26"
        assert min(counts.values()) == counts["AU9"] == counts["AU10"]
    low, high = three["token_centre_span"]
    assert three["num_tokens"] == 49 and 0.2 < low < high < 0.85


def test_03_face_info_mining():
    answers = load("03_face_info_mining").solve()
    one = answers["exercise_1"]
    assert one["shape"] == (16, 16) and one["max_abs_diff"] < 1e-5
    assert one["row_sums"] == pytest.approx([1.0] * 16, abs=1e-5)

    two = answers["exercise_2"]
    assert two["global_min"] == pytest.approx(two["uniform"], abs=1e-6)
    assert two["global_max"] == pytest.approx(two["uniform"], abs=1e-6)
    assert two["local_region_spread"] < 1e-6
    # zeroing is not removing: the output still depends on the (constant) face input and on the branch
    assert two["change_vs_real"] > 1e-3 and two["change_zero_vs_three"] > 1e-3 and two["change_vs_no_face_arm"] > 1e-3

    three = answers["exercise_3"]
    assert three["null_weight_min"] == pytest.approx(1.0) and three["region_weight_max"] == 0.0
    assert three["output_finite"] and three["without_null_is_nan"]


def test_04_instruction_data():
    answers = load("04_instruction_data").solve()
    one = answers["exercise_1"]
    assert one["category_answer"] == "happiness" and one["guarded_answer"] == "My choice is: happiness"
    assert one["question_lists_classes"] and one["conversation_turns"] == 3 and one["conversation_mentions_agr"]
    (task_a, turns_a), (task_b, turns_b) = one["items"]
    assert (task_a, task_b) == ("category", "conversation")
    assert turns_a[0][1] == "happiness" and len(turns_b) == 1 and "happiness" in turns_b[0][1]

    two = answers["exercise_2"]
    assert list(two["stored"].values()) == [40, 27, 19, 13, 9, 6, 4]
    assert two["shuffled"] == two["stored"]
    assert sum(two["resampled"].values()) == sum(two["stored"].values())
    assert two["weight_share"] == pytest.approx(dict.fromkeys(two["stored"], 1 / 7))
    assert two["resampled"]["anger"] > 2 * two["stored"]["anger"]
    assert two["resampled"]["neutral"] < two["stored"]["neutral"] / 2

    three = answers["exercise_3"]
    assert three["uar"] == pytest.approx(1 / 7)
    assert three["war"] == pytest.approx(three["neutral_share"]) and three["war"] > 2 / 7


def test_05_train(tmp_path):
    answers = load("05_train").solve(output_dir=tmp_path, max_steps=6)
    one = answers["exercise_1"]
    label = one["label"]
    assert one["trained_tokens"] == [*label, "<|im_end|>"]  # byte tokenizer: one position per character
    assert min(one["trained_positions"]) > max(one["frame_positions"])
    assert len(one["frame_positions"]) == 3 and max(one["trained_positions"]) == one["last_position"] - 1

    two = answers["exercise_2"]
    assert two["frame_positions"] == 12
    assert two["order"][:4] == ["<F1:con>", "<F1:vis>", "<F1:lan>", "<F2:con>"] and two["order"][-1] == "<F4:lan>"

    with_lm, without = answers["exercise_3"]["with"], answers["exercise_3"]["without"]
    assert (with_lm["tokens_per_frame"], without["tokens_per_frame"]) == (3, 2)
    assert without["landmark_encoder"] is None
    assert with_lm["trainable"] - without["trainable"] == with_lm["landmark_encoder"] > 0
    assert "landmark_encoder" in with_lm["parts"] and "landmark_encoder" not in without["parts"]
    assert with_lm["prompt_positions"] - without["prompt_positions"] == 1


def test_07_multimodal(tmp_path):
    answers = load("07_multimodal").solve(tmp_path)
    voices = answers["exercise_1"]
    assert len(voices) == 6 and all(v["described"] and v["described"].endswith("voice") for v in voices)
    assert all(v["written"] for v in voices)  # mini wrote the voice it synthesised for every clip
    audio = answers["exercise_2"]["audio"]
    assert answers["exercise_2"]["audio_dropout"] == 0.5 and audio["status_counts"]["ok"] >= 1
    merr = answers["exercise_3"]
    assert len(merr["records"]) == 3 and not merr["bad"] and len(merr["read_back"]) == 3
    first = next(iter(merr["records"][0].values()))
    assert first["audio_prior_list"].endswith("voice") and "pseu_emotion" in first

"""Short papermill runs of notebooks 05 and 03 (offline stack, mini data, a few steps) and 02's explorer."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fixtures.notebook_figures import (  # noqa: E402
    cells_without_figures,
    is_widget_cell,
    outputs_captured_by_widgets,
    plotting_cells,
    widget_cells_not_one_figure_and_box,
)

pytestmark = [pytest.mark.notebook, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]


def _papermill(name: str, out: Path, **params) -> None:
    """Execute a notebook headless; a cell that runs past the timeout fails the test."""
    import papermill
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    papermill.execute_notebook(str(ROOT / "notebooks" / name), str(out), parameters=params, kernel_name="python3",
                               cwd=str(ROOT), progress_bar=False, log_output=True, execution_timeout=600)


def _assert_figures_shown(path: Path) -> None:
    """Every plotting cell of the executed notebook has its image; a widget cell exactly one, and its widget box;
    no `Output` widget captured anything while the cells ran (the path on which nbclient could hang)."""
    nb = nbformat.read(path, as_version=4)
    assert plotting_cells(nb), f"{path.name}: no plotting cell found"
    assert cells_without_figures(nb) == [], f"{path.name}: plotting cells without a figure"
    assert widget_cells_not_one_figure_and_box(nb) == [], f"{path.name}: a widget cell without its figure or box"
    assert outputs_captured_by_widgets(nb) == 0, f"{path.name}: an Output widget was drawn into headless"


def test_05_train_short_run(tmp_path, monkeypatch):
    monkeypatch.setenv("EMO_LLAMA_PROGRESS", "lines")  # as `make train` runs it: progress as printed lines
    out_dir = tmp_path / "run05"
    _papermill("05_train.ipynb", tmp_path / "05.ipynb", max_steps=3, batch_size=4, train_limit=24, eval_limit=8,
               align_steps=4, output_dir=str(out_dir))
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["dataset"] == "mini" and metrics["stack"] == "offline" and metrics["steps"] == 3
    for key in ("zero_shot", "trained"):
        assert set(metrics[key]) - {"by_kind"} == {"acc", "uar", "war", "wf1", "unparseable"}
        assert set(metrics[key].get("by_kind", {})) <= {"image", "video"}  # both kinds drawn: each apart
    assert len(metrics["train_loss"]) == 3 and len(metrics["align_loss"]) == 4
    assert (out_dir / "model" / "trainable.safetensors").exists() and (out_dir / "confusion.png").exists()
    _assert_figures_shown(tmp_path / "05.ipynb")
    nb = nbformat.read(tmp_path / "05.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    for stage in ("frozen features -> store (process 0)", "zero-shot eval:", "label-word alignment: 4/4",
                  "LoRA training: 3/3 (100%)", "trained eval:", "== run finished", "metrics.json"):
        assert stage in printed, stage


def test_05_hears_with_use_audio(tmp_path):
    # `-p use_audio True`: mini's clips with their sound (eGeMAPS, the offline stack's audio encoder) and the words
    # spoken in the question; the audio section of metrics.json counts every media's sound status.
    out_dir = tmp_path / "run05a"
    _papermill("05_train.ipynb", tmp_path / "05a.ipynb", max_steps=2, batch_size=4, train_limit=14, eval_limit=8,
               align_steps=2, use_audio=True, use_text=True, train_kinds="video", output_dir=str(out_dir))
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["config"]["use_audio"] and metrics["config"]["use_text"] and metrics["steps"] == 2
    counts = metrics["audio"]["status_counts"]
    assert counts["ok"] >= 1 and counts["no_audio_track"] >= 1 and metrics["audio"]["clips_without_sound"] == 0
    config = json.loads((out_dir / "model" / "emo_llama_config.json").read_text())
    assert config["use_audio"] is True
    _assert_figures_shown(tmp_path / "05a.ipynb")


def test_05_missing_dataset_stops_at_once(tmp_path):
    import papermill
    with pytest.raises(papermill.PapermillExecutionError) as err:
        _papermill("05_train.ipynb", tmp_path / "05.ipynb", dataset="mafw", data_root=str(tmp_path / "no_mafw"),
                   output_dir=str(tmp_path / "x"))
    assert "MAFW" in str(err.value) or "mafw" in str(err.value)
    assert not (tmp_path / "x" / "metrics.json").exists()


def test_03_face_info_mining_trains_when_no_checkpoint(tmp_path):
    out = tmp_path / "03.ipynb"
    _papermill("03_face_info_mining.ipynb", out, checkpoint=str(tmp_path / "none"), fallback_steps=2,
               fallback_align_steps=2, fallback_dir=str(tmp_path / "fim"), n_faces=2)
    text = out.read_text()
    assert "No trained checkpoint" in text
    assert (tmp_path / "fim" / "model" / "trainable.safetensors").exists()
    _assert_figures_shown(out)  # the fallback run saves its plots: the notebook's own figures must still show
    nb = nbformat.read(out, as_version=4)
    assert any("face_attention_explorer(" in c.source for _, c in plotting_cells(nb) if is_widget_cell(c))


def test_02_explorer_shows_its_first_figure_and_its_controls(tmp_path):
    out = tmp_path / "02.ipynb"
    _papermill("02_facial_priors.ipynb", out, faces="astronaut,grace_hopper", max_video_frames=1)
    _assert_figures_shown(out)
    nb = nbformat.read(out, as_version=4)
    explorer = [c for _, c in plotting_cells(nb) if is_widget_cell(c)]  # checked above: one figure and its box
    assert len(explorer) == 1 and "face_explorer(" in explorer[0].source


def test_06_ablations_tiny_run(tmp_path):
    # The tiny stack (random weights, seconds) on a few mini samples: every table's arms, 2 seeds, two trainings
    # side by side in worker processes, figures shown. 28 test samples drawn by label and kind hold 7 videos.
    out_dir = tmp_path / "abl"
    _papermill("06_ablations.ipynb", tmp_path / "06.ipynb", stack="tiny", seeds=2, max_steps=1, align_steps=1,
               batch_size=2, train_limit=14, eval_limit=28, output_dir=str(out_dir), tables="2,3,5,6,7,8,9",
               workers=2)
    results = json.loads((out_dir / "results.json").read_text())
    assert results["tables"] == [2, 3, 5, 6, 7, 8, 9] and len(results["arms"]) == 19
    assert len(results["runs"]) == 9 * 2  # 19 arms share 9 trainings per seed (+ images only, videos only)
    for name, arm in results["arms"].items():
        assert [s["seed"] for s in arm["per_seed"]] == [0, 1] and (arm["paper"] or arm["table"] in (2, 3)), name
    for table in (2, 3):  # each cross-modality arm reads one media kind of the test split
        assert {s["kind"] for name in results["arms"] if results["arms"][name]["table"] == table
                for s in results["arms"][name]["per_seed"]} == {"video" if table == 2 else "image"}
    for table in (2, 3, 5, 6, 7, 8, 9):
        assert (out_dir / f"tab{table}.png").exists()
    _assert_figures_shown(tmp_path / "06.ipynb")
    text = (tmp_path / "06.ipynb").read_text()
    for table in (2, 3, 5, 6, 7, 8, 9):
        assert f"Tab. {table}: " in text  # the comparison table and the sentence on difference vs seed spread


def test_07_multimodal_tiny_run(tmp_path):
    # The tiny stack (random weights) on mini with sound: the eGeMAPS table on a few clips, flagged sound, AUs on
    # real faces, Tab. 10's arms (face, face + audio, audio only, face + spoken text) for 1 seed, and a reason model.
    out_dir = tmp_path / "mm"
    _papermill("07_multimodal.ipynb", tmp_path / "07.ipynb", stack="tiny", seeds=1, max_steps=1, align_steps=1,
               batch_size=2, train_limit=28, eval_limit=28, voice_clips=14, output_dir=str(out_dir))
    results = json.loads((out_dir / "results.json").read_text())
    assert results["tables"] == [10] and set(results["arms"]) == {"t10_visual", "t10_visual_audio",
                                                                   "t10_audio_only", "t10_visual_text"}
    for arm in results["arms"].values():
        assert {s["kind"] for s in arm["per_seed"]} == {"video"} and "wf1" in arm["mean"]
    reason = json.loads((out_dir / "reason" / "metrics.json").read_text())
    assert reason["reasons"]["n"] > 0 and reason["audio"]["status_counts"]["ok"] > 0
    _assert_figures_shown(tmp_path / "07.ipynb")
    text = (tmp_path / "07.ipynb").read_text()
    for status in ("no_audio_track", "silent", "unreadable"):
        assert f"**{status}**" in text  # each kind of missing sound is named in the table

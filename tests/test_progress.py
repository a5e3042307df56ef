"""Progress for headless runs: EMO_LLAMA_PROGRESS=lines prints lines papermill --log-output can stream."""

from __future__ import annotations

import io
import json

from emo_llama.progress import LineProgress, progress


def test_lines_mode_is_chosen_by_the_environment(monkeypatch):
    monkeypatch.setenv("EMO_LLAMA_PROGRESS", "lines")
    assert isinstance(progress(range(3), desc="x"), LineProgress)
    monkeypatch.delenv("EMO_LLAMA_PROGRESS")
    assert not isinstance(progress(range(3), desc="x", disable=True), LineProgress)


def test_line_progress_reports_counts_eta_and_postfix():
    stream = io.StringIO()
    bar = LineProgress(range(2, 6), total=6, initial=2, desc="LoRA training", interval=0.0, stream=stream)
    for step in bar:
        bar.set_postfix(loss=f"{1.0 / (step + 1):.3f}")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "LoRA training: started, 6 to do"
    assert lines[1].startswith("LoRA training: 3/6 (50%)") and "ETA" in lines[1]
    assert lines[-1].startswith("LoRA training: 6/6 (100%)") and lines[-1].endswith("done, loss=0.167")
    assert len(lines) == 6  # start, one per step, end (printed once)
    bar.close()
    assert len(stream.getvalue().splitlines()) == 6


def test_disabled_line_progress_prints_nothing():
    stream = io.StringIO()
    for _ in LineProgress(range(3), desc="x", interval=0.0, disable=True, stream=stream):
        pass
    assert stream.getvalue() == ""


def test_run_summary_names_figures_and_outputs(tmp_path):
    from emo_llama.evaluate.summary import summarise

    metrics = {"dataset": "mini", "stack": "offline", "steps": 3, "feature_seconds": 1.0, "align_seconds": 2.0,
               "train_seconds": 3.0, "zero_shot": {"acc": 0.1, "uar": 0.2, "war": 0.1, "unparseable": 0},
               "trained": {"acc": 0.5, "uar": 0.6, "war": 0.5, "unparseable": 1},
               "unreadable": {"count": 1, "items": []}, "no_face": {"train": 0, "test": 2}}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "model").mkdir()
    text = summarise(tmp_path, notebook="runs/05_train.ipynb")
    assert "trained      acc 0.500  UAR 0.600" in text and "zero_shot" in text and "(unparseable 1)" in text
    assert "unreadable media: 1" in text and "test 2" in text
    assert "metrics.json" in text and "model" in text and "loss.png" not in text
    assert text.endswith("executed notebook: runs/05_train.ipynb")

"""Short papermill runs of notebooks 05 and 03 (offline stack, mini data, a few steps)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytestmark = [pytest.mark.notebook, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]


def _papermill(name: str, out: Path, **params) -> None:
    import papermill
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    papermill.execute_notebook(str(ROOT / "notebooks" / name), str(out), parameters=params, kernel_name="python3",
                               cwd=str(ROOT), progress_bar=False)


def test_05_train_short_run(tmp_path):
    out_dir = tmp_path / "run05"
    _papermill("05_train.ipynb", tmp_path / "05.ipynb", max_steps=3, batch_size=4, train_limit=24, eval_limit=8,
               align_steps=4, output_dir=str(out_dir))
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["dataset"] == "mini" and metrics["stack"] == "offline" and metrics["steps"] == 3
    for key in ("zero_shot", "trained"):
        assert set(metrics[key]) == {"acc", "uar", "war", "unparseable"}
    assert len(metrics["train_loss"]) == 3 and len(metrics["align_loss"]) == 4
    assert (out_dir / "model" / "trainable.safetensors").exists() and (out_dir / "confusion.png").exists()


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

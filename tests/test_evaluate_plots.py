"""Saving a run's plots must leave matplotlib as the caller set it up (a notebook keeps its inline figures)."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt

from emo_llama.data import compute_metrics
from emo_llama.evaluate import save_plots


def test_save_plots_keeps_the_backend_and_leaves_no_figures(tmp_path):
    before = matplotlib.get_backend()
    matplotlib.use("svg")  # any backend other than Agg: save_plots used to force Agg
    try:
        plt.close("all")
        metrics = compute_metrics(["a", "b", "a"], ["a", "a", None], ["a", "b"])
        save_plots(tmp_path, [2.0, 1.5, 1.2], metrics)
        assert matplotlib.get_backend() == "svg"
        assert plt.get_fignums() == []
        for name in ("loss.png", "confusion.png"):
            assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        matplotlib.use(before)

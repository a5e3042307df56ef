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


def test_samples_to_show_leaves_out_unreadable_media_and_says_why():
    from types import SimpleNamespace

    from emo_llama.evaluate.plots import samples_to_show

    samples = [SimpleNamespace(media=f"clip{i}.mp4") for i in range(8)]
    features = {s.media: object() for s in samples if s.media not in ("clip0.mp4", "clip5.mp4")}
    report = {"count": 1, "items": [{"path": "clip0.mp4", "split": "test", "error": "moov atom not found"}]}
    shown, left_out = samples_to_show(samples, features, n=3, unreadable=report)
    assert [s.media for s in shown] == ["clip1.mp4", "clip3.mp4", "clip6.mp4"]  # every 2nd of the 6 readable
    assert left_out == ["clip0.mp4: moov atom not found", "clip5.mp4: could not be read"]
    everything = {s.media: object() for s in samples}
    assert [s.media for s in samples_to_show(samples, everything, n=4)[0]] == [f"clip{i}.mp4" for i in (0, 2, 4, 6)]


def _titles_over_other_axes(fig) -> list[str]:
    """Titles (axes titles, subfigure titles) that overlap an axes other than their own, once drawn."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = [ax for ax in fig.get_axes() if ax.get_images()]
    titles = [(ax.title, ax) for ax in axes] + [(text, None) for sub in fig.subfigs for text in sub.texts]
    return [text.get_text() for text, own in titles for ax in axes
            if ax is not own and text.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))]


def test_real_face_titles_stay_off_the_photos_above():
    from emo_llama.evaluate import show_real_faces
    from emo_llama.faces.samples import real_face_set

    items = real_face_set()[:7]  # two rows of five, as the notebook's 14 are three
    rows = [{"correct": False, "prediction": "anger", "baseline": "happiness"} for _ in items]
    fig = show_real_faces({"items": rows}, items=items)
    try:
        assert _titles_over_other_axes(fig) == []
    finally:
        plt.close(fig)


def test_face_attention_row_titles_stay_off_the_maps_above():
    import torch

    from emo_llama.expert.au import AU_REGIONS
    from emo_llama.features.synthetic import synthetic_features
    from emo_llama.model.parts.attention_maps import plot_face_attention

    media = [synthetic_features(i, seed=i) for i in range(3)]
    maps = {"global": torch.rand(3, 2, 49), "local": torch.rand(3, 2, len(AU_REGIONS)), "context": torch.rand(3, 49)}
    fig = plot_face_attention(maps, media, (7, 7), (7, 7), titles=[f"true happiness | model: face {i}" for i in range(3)])
    try:
        assert [sub.get_suptitle() for sub in fig.subfigs] == [f"true happiness | model: face {i}" for i in range(3)]
        assert _titles_over_other_axes(fig) == []
    finally:
        plt.close(fig)

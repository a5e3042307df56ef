"""`mini`: the bundled dataset, synthesised offline from real faces with EMFACS Action-Unit warps.

Layout (so the official loaders read it):
- images: RAF-DB layout, `images/EmoLabel/list_patition_label.txt` + `images/Image/aligned/*_aligned.jpg`;
- videos: MAFW layout, `videos/data/clips/*.mp4` (4-6 frames at 1 FPS: neutral -> apex -> back) and
  `videos/Train & Test Set/single/{no_caption,with_caption}/set_1/{train,test}.txt`;
- `*/mini_meta.tsv`: identity, AUs, intensity, source and caption per sample, and for clips the sentence spoken
  and its tone of voice; `BUILD_INFO.json` is written last, so an interrupted build is redone on the next call.
Clips have a sound track: a lexically neutral sentence said by eSpeak NG with the prosody of the clip's class
(`emo_llama.data.mini.speech`).
Identities are split ~80/20 by a seeded permutation (per source: LFW and colour faces): test faces
never appear in training.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from emo_llama.data.aus import VARIANTS, describe_aus, describe_aus_zh
from emo_llama.data.datasets.base import FERDataset, register
from emo_llama.data.datasets.image_sets import load_rafdb
from emo_llama.data.datasets.video_sets import MAFW_SPLIT_DIR, load_mafw
from emo_llama.data.labels import MINI_CLASSES, RAFDB_CLASSES
from emo_llama.data.mini.sanity import ExpressionReader
from emo_llama.data.mini.sources import load_identities
from emo_llama.data.mini.speech import (
    SAMPLE_RATE,
    describe_prosody,
    draw_speech,
    place_in_clip,
    speech_settings,
    synthesise,
)
from emo_llama.data.mini.warp import similarity, warp_face
from emo_llama.faces.samples import HELD_OUT_IDENTITIES
from emo_llama.progress import progress as progress_bar
from emo_llama.utils import atomic_path, default_cache_dir, torch_threads

MINI_VERSION = 5  # bump whenever the media change: each version builds into its own cache folder
# 4: renders of other classes that the judge reads as happiness are never kept (`_select`)
# 4 -> 5: clips carry speech (a sound track; the frames are those of v4)
# text: the sentence spoken, voice: its prosody in words (clips; "" for images)
META_FIELDS = ("id", "identity", "label", "aus", "intensity", "source", "caption", "judge_agreed", "text", "voice")
AUDIO_BIT_RATE = 48_000  # AAC, mono 16 kHz speech
JUDGE = "fer"  # the real-trained classifier whose agreement mini's renders need (see make_judge)
SMILE = "happiness"


def _rng(seed: int, *keys: int) -> np.random.Generator:
    """An independent stream per (identity, class, copy): output does not depend on loop order."""
    return np.random.default_rng([seed, *keys])


def _expression(label: str, rng: np.random.Generator, lo: float = 0.85, hi: float = 1.3) -> dict[int, float]:
    """One of the class's AU variants; intensities: a global level (moderate to strong) times a small
    per-AU wobble."""
    variants = VARIANTS[label]
    aus = variants[int(rng.integers(len(variants)))]
    level = rng.uniform(lo, hi)
    return {au: float(level * rng.uniform(0.9, 1.1)) for au in aus}


def _pose(size: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    angle, scale = rng.uniform(-6, 6), rng.uniform(0.94, 1.06)
    shift = rng.uniform(-0.03, 0.03, 2) * size
    return similarity(size, angle, scale, tuple(shift)), float(rng.uniform(0.85, 1.15))


def _render(ident, frame_idx: int, aus: dict[int, float], pose: np.ndarray, brightness: float, size: int) -> np.ndarray:
    """Warp the context crop, then keep its centre `size` pixels (the detector's framing)."""
    out, _ = warp_face(ident.frames[frame_idx], ident.landmarks[frame_idx], aus, pose=pose,
                       brightness=brightness, rest=ident.neutralise[frame_idx])
    off = (out.shape[0] - size) // 2
    return np.ascontiguousarray(out[off:off + size, off:off + size])


def write_clip(frames: list[np.ndarray], path: Path, audio: np.ndarray | None = None) -> None:
    """H.264 frames at 1 FPS and, with `audio` (float32 mono at 16 kHz), a mono AAC track next to them. The video
    stream is written the same way with or without sound, so the frames decode the same."""
    import av

    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=1)  # 1 FPS: every frame is one sampled second
            stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "16", "preset": "medium", "threads": "1"}  # 1 thread: reproducible bytes
            sound = None
            if audio is not None:
                sound = container.add_stream("aac", rate=SAMPLE_RATE)
                sound.layout, sound.bit_rate = "mono", AUDIO_BIT_RATE
            for f in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
            if sound is not None:
                samples = np.asarray(audio, dtype=np.float32)
                for start in range(0, len(samples), 1024):  # AAC's frame size
                    block = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[None, start:start + 1024]),
                                                       format="fltp", layout="mono")
                    block.sample_rate, block.pts = SAMPLE_RATE, start
                    for packet in sound.encode(block):
                        container.mux(packet)
                for packet in sound.encode():
                    container.mux(packet)


def split_identities(names: list[str], seed: int, test_fraction: float) -> dict[str, str]:
    """Seeded identity split, stratified by source (the grayscale LFW faces and the colour ones), so
    that both splits hold both kinds of face. The identities whose real photos are in the real-face
    check set are always test identities, so that set is never trained on."""
    split: dict[str, str] = {n: "test" for n in names if n in HELD_OUT_IDENTITIES}
    rng = np.random.default_rng(seed)
    names = [n for n in names if n not in HELD_OUT_IDENTITIES]
    for group in (sorted(n for n in names if n.startswith("lfw")), sorted(n for n in names if not n.startswith("lfw"))):
        if not group:
            continue
        order = rng.permutation(len(group))
        n_test = max(1, int(round(test_fraction * len(group)))) if len(group) > 1 else 0
        split.update({group[i]: ("test" if rank < n_test else "train") for rank, i in enumerate(order)})
    return split


def _draw_image(ident, label: str, side: int, size: int, rng: np.random.Generator):
    aus = _expression(label, rng)
    pose, bright = _pose(side, rng)
    frame_idx = int(rng.integers(len(ident.frames)))
    return [_render(ident, frame_idx, aus, pose, bright, size)], aus, frame_idx


def _draw_clip(ident, label: str, side: int, size: int, frames_range: tuple[int, int], rng: np.random.Generator):
    aus = _expression(label, rng)
    n = int(rng.integers(frames_range[0], frames_range[1] + 1))
    pose_a, bright = _pose(side, rng)
    pose_b, _ = _pose(side, rng)
    first = int(rng.integers(len(ident.frames)))
    frames = []
    for t in range(n):
        phase = t / (n - 1)
        strength = float(np.sin(np.pi * phase))  # 0 -> 1 -> 0: neutral, apex, back
        pose = pose_a + 0.5 * phase * (pose_b - pose_a)  # slow head drift
        fi = min(first + t, len(ident.frames) - 1)  # real motion where the source is a video
        frames.append(_render(ident, fi, {a: v * strength for a, v in aus.items()}, pose, bright, size))
    return frames, aus, first


def _select(draw, label: str, judge, candidates: int, seed: int, *keys: int, smile_floor: float | None = None):
    """Draw up to `candidates` renders of `label` and keep the first one the judge reads as `label`
    (the judge sees the apex frame); if none agrees, keep the one it gives the label's highest
    probability, except a smile: a render of another class that the judge reads as happiness is never
    kept. Returns (draw result, agreed), or (None, False) when every candidate was such a smile.
    `smile_floor`: a render of another class counts as a smile when the judge gives happiness at least this
    probability, whatever its top class (None: when happiness is its top class, as mini v4 and v5 are built).

    Why the smile rule: many source faces smile (LFW's most of all), and a warp that adds, say, AU4 or
    AU9 leaves the smile in place; such a render labelled neutral, surprise or disgust teaches a model that
    a smile is not happiness, which is exactly how models trained on mini v3 read real smiles (0 of 14).
    Happiness is also the class the judge reads most reliably (99 of 101 of mini v3's happy images)."""
    best, best_p = None, -1.0
    for attempt in range(candidates if judge is not None else 1):
        result = draw(_rng(seed, *keys, attempt) if attempt else _rng(seed, *keys))
        if judge is None:
            return result, None
        frames = result[0]
        probs = judge(frames[len(frames) // 2])
        read = max(probs, key=probs.get)
        smile = read == SMILE if smile_floor is None else probs[SMILE] >= smile_floor
        if label != SMILE and smile:
            continue
        if read == label:
            return result, True
        if probs[label] > best_p:
            best, best_p = result, probs[label]
    return best, False


def make_judge(name: str | None, crop: bool = False):
    """An expression classifier trained on real faces, as `judge(image) -> {class: probability}`, or None.

    mini keeps only renders such a classifier agrees with (see `_select`). The judge must not be the
    classifier that validates mini (facex's, notebook 04's gate) nor a feature of the model (face-api's).
    `crop`: the judge reads the MTCNN crop of the frame, as the model's expert does, instead of the whole
    128 px frame (mini v5 is built with the whole frame; README, "Why 12 in every seed is out of reach").
    """
    if name is None:
        return None
    reader = ExpressionReader(name, crop=crop)

    def judge(image: np.ndarray) -> dict[str, float]:
        # One small image: extra threads only spin (measured 10x slower on a busy 2-core CPU).
        with torch_threads(1):
            probs = reader([image])[0][0]
        return {n: float(p) for n, p in zip(reader.names, probs) if n in MINI_CLASSES}

    return judge


def build_mini(out_dir: str | Path, seed: int = 0, size: int = 128, max_identities: int | None = None,
               test_fraction: float = 0.2, images_per_class: int = 1, colour_images_per_class: int = 4,
               videos_per_identity: int = 2, frames_range: tuple[int, int] = (4, 6), judge: str | None = JUDGE,
               candidates: int = 4, only_split: str | None = None, progress: bool = True, judge_crop: bool = False,
               smile_floor: float | None = None) -> dict:
    """Write mini into `out_dir` (replacing what is there) and return its BUILD_INFO.

    `judge_crop`, `smile_floor`: a stricter judge (`make_judge`'s `crop`, `_select`'s `smile_floor`); the defaults
    build mini as `make train` reads it. `ensure_mini(judge_crop=True, smile_floor=0.3)` builds the stricter
    variant into its own cache folder; train on it with `--data_root <that folder>`.

    only_split="test" renders only that split's identities, each exactly as the full build renders it
    (benchmarks/mini_gate_spread.py measures the validity gate over seeds this way)."""
    start = time.perf_counter()
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    judge_fn = make_judge(judge, crop=judge_crop)
    identities = load_identities(size=size, max_identities=max_identities)
    side = identities[0].frames[0].shape[0]  # the context crop the warps run on
    split_of = split_identities([i.name for i in identities], seed, test_fraction)
    img_dir, vid_dir = out_dir / "images", out_dir / "videos"
    (img_dir / "Image" / "aligned").mkdir(parents=True)
    (vid_dir / "data" / "clips").mkdir(parents=True)
    labels, meta_img, meta_vid = [], [], []
    lists: dict[tuple[str, bool], list[str]] = {(s, c): [] for s in ("train", "test") for c in (False, True)}
    counters = {"train": 0, "test": 0}
    video_slot = {"train": 0, "test": 0}
    agreed: dict[str, list[bool]] = {}
    dropped: dict[str, int] = {}  # renders never kept: every candidate was read as a smile (see _select)
    clip_no = 0
    for ii, ident in enumerate(progress_bar(identities, desc="mini", disable=not progress)):
        split = split_of[ident.name]
        if only_split is not None and split != only_split:
            continue
        copies = colour_images_per_class if not ident.name.startswith("lfw") else images_per_class
        for ci, label in enumerate(MINI_CLASSES):
            for k in range(copies):
                drawn, ok = _select(
                    partial(_draw_image, ident, label, side, size), label, judge_fn, candidates, seed, ii, ci, k,
                    smile_floor=smile_floor)
                if drawn is None:
                    dropped[label] = dropped.get(label, 0) + 1
                    continue
                frames, aus, frame_idx = drawn
                agreed.setdefault(label, []).append(bool(ok))
                counters[split] += 1
                name = f"{split}_{counters[split]:05d}"
                Image.fromarray(frames[0]).save(img_dir / "Image" / "aligned" / f"{name}_aligned.jpg", quality=95)
                labels.append(f"{name}.jpg {RAFDB_CLASSES.index(label) + 1}")
                meta_img.append(_meta(name, ident, label, aus, frame_idx, ok))
        for k in range(videos_per_identity):
            # Classes cycle over the videos of each split, so both splits stay balanced.
            label = MINI_CLASSES[video_slot[split] % len(MINI_CLASSES)]
            video_slot[split] += 1
            drawn, ok = _select(
                partial(_draw_clip, ident, label, side, size, frames_range), label, judge_fn, candidates,
                seed, ii, 100 + k, smile_floor=smile_floor)
            if drawn is None:
                dropped[label] = dropped.get(label, 0) + 1
                continue
            frames, aus, first = drawn
            agreed.setdefault(label, []).append(bool(ok))
            clip_no += 1
            clip = f"{clip_no:05d}"
            # Speech from its own stream, keyed on the clip's slot like its pixels (see speech.draw_speech).
            speech = draw_speech(label, seed, ident.name, (ii, 100 + k))
            utterance = synthesise(speech.text, speech.prosody, speech.voice, speech.noise_seed)
            write_clip(frames, vid_dir / "data" / "clips" / f"{clip}.mp4",
                       audio=place_in_clip(utterance, seconds=len(frames)))  # 1 FPS: n frames last n seconds
            caption = describe_aus(aus)
            lists[(split, False)].append(f"{clip}.mp4 {label}")
            lists[(split, True)].append(f"{clip}.mp4\t{label}\t{describe_aus_zh(aus)}\t{caption}")
            meta_vid.append(_meta(clip, ident, label, aus, first, ok, speech.text, describe_prosody(speech.prosody)))
    (img_dir / "EmoLabel").mkdir()
    (img_dir / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(sorted(labels)) + "\n")
    for (split, cap), lines in lists.items():
        folder = vid_dir / MAFW_SPLIT_DIR / "single" / ("with_caption" if cap else "no_caption") / "set_1"
        folder.mkdir(parents=True, exist_ok=True)
        data = "".join(line + "\n" for line in lines)
        (folder / f"{split}.txt").write_bytes(data.encode("gbk" if cap else "utf-8"))  # MAFW's encodings
    for folder, rows in ((img_dir, meta_img), (vid_dir, meta_vid)):
        with open(folder / "mini_meta.tsv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, delimiter="\t", lineterminator="\n")
            writer.writerow(META_FIELDS)
            writer.writerows(rows)
    info = {"version": MINI_VERSION, "seed": seed, "size": size, "identities": len(identities),
            "test_identities": sorted(n for n, s in split_of.items() if s == "test"),
            "images": len(labels), "videos": clip_no, "judge": judge, "candidates": candidates if judge else 1,
            "judge_reads": "MTCNN crop" if judge_crop else "whole frame", "smile_floor": smile_floor,
            "judge_agreement": {c: round(float(np.mean(v)), 3) for c, v in agreed.items()} if judge else None,
            "dropped_smiles": dict(sorted(dropped.items())),
            "speech": speech_settings(),
            "build_seconds": round(time.perf_counter() - start, 1)}
    with atomic_path(out_dir / "BUILD_INFO.json") as tmp:
        tmp.write_text(json.dumps(info, indent=1))
    return info


def _meta(name: str, ident, label: str, aus: dict[int, float], frame_idx: int, agreed: bool | None,
          text: str = "", voice: str = "") -> list[str]:
    """One row of mini_meta.tsv, in META_FIELDS order (an image has no text or voice)."""
    au_text = "+".join(str(a) for a in sorted(aus)) or "none"
    level = np.mean(list(aus.values())) if aus else 0.0
    judged = "-" if agreed is None else "yes" if agreed else "no"
    return [name, ident.name, label, au_text, f"{level:.3f}", f"{ident.source} frame {frame_idx}", describe_aus(aus),
            judged, text, voice]


def mini_root(cache_dir: str | Path | None = None, seed: int = 0, **build_options) -> Path:
    """The cache folder of one mini build; non-default options get their own folder."""
    tag = f"mini-v{MINI_VERSION}-seed{seed}"
    if build_options:
        tag += "-" + "-".join(f"{k}{v}" for k, v in sorted(build_options.items()) if k != "progress")
    return Path(cache_dir or default_cache_dir()) / tag


def ensure_mini(cache_dir: str | Path | None = None, seed: int = 0, rebuild: bool = False, **build_options) -> Path:
    """Build mini on first use (about a minute on 2 cores); later calls only check the marker file.

    The build goes to a private temporary folder that is renamed into place at the end, so two
    processes starting at once (a notebook and a training run) never see half a dataset.
    """
    root = mini_root(cache_dir, seed, **build_options)
    if (root / "BUILD_INFO.json").exists() and not rebuild:
        return root
    tmp = root.with_name(f".{root.name}.tmp-{os.getpid()}")
    build_mini(tmp, seed=seed, **build_options)
    if rebuild and root.exists():
        shutil.rmtree(root)
    try:
        os.replace(tmp, root)
    except OSError:  # another process finished first (or a stale incomplete folder is in the way)
        if (root / "BUILD_INFO.json").exists():
            shutil.rmtree(tmp)
        else:
            shutil.rmtree(root)
            os.replace(tmp, root)
    return root


def _read_meta(path: Path) -> dict[str, dict[str, str]]:
    with open(path, encoding="utf-8") as f:
        return {row["id"]: row for row in csv.DictReader(f, delimiter="\t")}


@register("mini")
def load_mini(root: Path | None = None, split: str = "train", fold: int | None = 1, part: str = "all",
              cache_dir: str | Path | None = None, seed: int = 0, **build_options) -> FERDataset:
    """mini's images (RAF-DB reader), videos (MAFW reader) or both, with identities, AU captions and AU coding;
    clips also with the sentence spoken (`Sample.text`) and its tone of voice in words (`Sample.voice`)."""
    from dataclasses import replace

    if part not in ("all", "images", "videos"):
        raise ValueError(f"mini: part must be 'all', 'images' or 'videos', got {part!r}")
    if split not in ("train", "test"):
        raise ValueError(f"mini: split must be 'train' or 'test' (split by identity), got {split!r}")
    if fold not in (None, 1):
        raise ValueError(f"mini has a single identity split (fold 1), got fold={fold!r}")
    root = Path(root) if root is not None else ensure_mini(cache_dir, seed, **build_options)
    samples = []
    # Sample.aus: the AUs drawn, as mini_meta.tsv writes them ("6+12"); a face without AUs (neutral, "none" there)
    # is "" (coded, nothing active), not None (not coded), which `parse_au_coding` reads as the empty set.
    if part in ("all", "images"):
        meta = _read_meta(root / "images" / "mini_meta.tsv")
        for s in load_rafdb(root / "images", split=split).samples:
            m = meta[s.id]
            samples.append(replace(s, identity=m["identity"], caption=m["caption"], fold=1,
                                   aus="" if m["aus"] == "none" else m["aus"]))
    if part in ("all", "videos"):
        meta = _read_meta(root / "videos" / "mini_meta.tsv")
        for s in load_mafw(root / "videos", split=split, fold=1, captions=True).samples:
            m = meta[s.id]
            samples.append(replace(s, identity=m["identity"], aus="" if m["aus"] == "none" else m["aus"],
                                   text=m["text"] or None, voice=m["voice"] or None))
    return FERDataset("mini", MINI_CLASSES, samples, split, 1, root)

"""Where do mini's labels and the facial expert disagree about smiles? The data limit behind the real-face figure.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/expert_vs_mini_labels.py [--degrade] [--root DIR]

The model's expression token is the expert's 7-class reading (face-api's expression net on the MTCNN crop); the
LLM learns what a reading means from mini's labels. On the 14 real check photos the expert is right 13 times, and
every photo the trained model misses is a smile that the expert reads with a *moderate* happiness probability
(0.44-0.67; README, "Seed after seed"). This counts, on mini's training split (apex frame of each sample, as the
validity gate reads it), how often the expert reads happiness on a face whose label is not happiness, and who fills
the ambiguous band (the expert's happiness probability in [BAND_LOW, BAND_HIGH]): if other labels fill it as often
as happiness does, a model trained on mini learns that a moderate smile is not happiness, whatever its architecture.
The same reading of the real photos shows which of them fall in that band.

`--degrade` also reads every training face after a real-photo-like degradation (one seeded draw per face: scale
down to 35-100% and back, Gaussian blur up to 1.2 px, brightness, contrast and saturation within +-30%, JPEG quality
25-90), the augmentation the issue proposed: it says whether such augmentation would move the band towards
happiness (more happy-labelled faces in it) or fill it with more conflicts. About 1 min on 2 cores.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from emo_llama.data.labels import MINI_CLASSES
from emo_llama.data.mini.build import ensure_mini, load_mini
from emo_llama.data.mini.sanity import ExpressionReader, first_frames
from emo_llama.faces.samples import real_face_set
from emo_llama.faces.video import load_frames

SMILE = "happiness"
BAND_LOW, BAND_HIGH = 0.35, 0.90  # the expert's happiness probability on the real smiles the model misses: 0.44-0.67


def degrade(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One real-photo-like degradation of an RGB uint8 image (see the module docstring for the ranges)."""
    im = Image.fromarray(image)
    w, h = im.size
    scale = rng.uniform(0.35, 1.0)
    im = im.resize((max(16, int(w * scale)), max(16, int(h * scale))), Image.BILINEAR).resize((w, h), Image.BILINEAR)
    im = im.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 1.2)))
    for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        im = enhance(im).enhance(rng.uniform(0.7, 1.3))
    buffer = io.BytesIO()
    im.save(buffer, "JPEG", quality=int(rng.integers(25, 91)))
    return np.asarray(Image.open(buffer).convert("RGB"))


def smile_table(labels: list[str], probs: np.ndarray, names: list[str]) -> dict:
    """Per label: faces, faces the expert reads as happiness (its top class), faces in the ambiguous band."""
    happy = probs[:, names.index(SMILE)]
    top = [names[i] for i in probs.argmax(1)]
    table = {}
    for label in MINI_CLASSES:
        rows = [i for i, lab in enumerate(labels) if lab == label]
        table[label] = {"faces": len(rows), "read_as_smile": sum(top[i] == SMILE for i in rows),
                        "in_band": sum(BAND_LOW <= happy[i] <= BAND_HIGH for i in rows)}
    return table


def print_table(title: str, table: dict) -> None:
    print(f"\n{title}\n| label | faces | expert reads happiness | happiness probability in [{BAND_LOW}, {BAND_HIGH}] |")
    print("|---|---|---|---|")
    for label, row in table.items():
        print(f"| {label} | {row['faces']} | {row['read_as_smile']} | {row['in_band']} |")
    others = [row for label, row in table.items() if label != SMILE]
    conflicts = sum(r["read_as_smile"] for r in others)
    print(f"expert reads happiness on {conflicts} of {sum(r['faces'] for r in others)} non-happy faces "
          f"(and on {table[SMILE]['read_as_smile']} of {table[SMILE]['faces']} happy ones); ambiguous band: "
          f"{table[SMILE]['in_band']} happy-labelled vs {sum(r['in_band'] for r in others)} with another label")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=None, help="a built mini folder (default: the one make train uses)")
    ap.add_argument("--seed", type=int, default=0, help="mini's build seed (with the default root)")
    ap.add_argument("--degrade", action="store_true", help="also read real-photo-like degraded copies")
    args = ap.parse_args()
    start = time.perf_counter()
    root = Path(args.root) if args.root else ensure_mini(seed=args.seed)
    train = load_mini(root, split="train").samples
    expert = ExpressionReader("faceapi")  # the offline stack's expert, on the MTCNN crop

    def reading(frames: list[np.ndarray]) -> np.ndarray:
        return expert(frames)[0].numpy()

    frames = first_frames(train)
    labels = [s.label for s in train]
    print(f"mini at {root.name}: {len(train)} training samples (apex frame each)")
    print_table("the expert on mini's training faces", smile_table(labels, reading(frames), expert.names))
    if args.degrade:
        rng = np.random.default_rng(0)
        degraded = [degrade(f, rng) for f in frames]
        print_table("the same faces, degraded like real photos", smile_table(labels, reading(degraded), expert.names))
    print("\nthe expert on the real check photos (mean over a clip's frames), happiness probability:")
    happy = expert.names.index(SMILE)
    for item in real_face_set():
        p = reading(list(load_frames(item.media))).mean(0)
        band = " <- in the band" if BAND_LOW <= p[happy] <= BAND_HIGH else ""
        print(f"  {item.name:13s} {item.label:10s} reads {expert.names[int(p.argmax())]:10s} "
              f"happiness {p[happy]:.2f}{band}")
    print(f"wall {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()

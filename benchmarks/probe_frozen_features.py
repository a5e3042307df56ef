"""What do the frozen features carry, on mini's unseen-identity test split and on the 14 real photos? Linear probes.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/probe_frozen_features.py [--dataset mini] [--stack offline]
        [--model runs/05_train/model]

EMO-LLaMA trains nothing before its Clue Aggregator: vision tokens, face tokens and landmarks are frozen.
A linear classifier on one of them bounds what the trained modules can read from it, and read on the
real-face check set (`emo_llama.faces.samples.real_face_set`: 12 smiles and 2 neutral faces), it says
whether what mini teaches through that feature carries over to real faces.

Data: the training run's own features. The splits come from `emo_llama.data.splits.load_splits` and
the features from the on-disk store that training reads (`emo_llama.features.extract_to_store`; what is
missing is extracted first: 84 s for mini with the offline stack in `make train` on an idle 2-core
machine); the real photos go through the same extractor, as in `emo_llama.evaluate.real_faces`. With
the features stored, it takes about 25 s on a busy 2-core machine, 1.5 min with `--model` (it prints its wall time).

Probe: multinomial logistic regression (scikit-learn, L-BFGS, L2 with C = `--C`) on the features
standardised with the training rows' mean and standard deviation. One row per frame: a training video's
frames each take its label; a test video averages its frames' log-probabilities. L-BFGS from a zero
start is deterministic, so there are no probe seeds.

Rows (`FEATURES`, name -> a function of one `MediaFeatures` giving one row per frame; add a feature
there to compare it, e.g. a new facial expert's embedding):
- the normalised 68 landmarks, the mean-pooled face tokens, the mean-pooled vision tokens (the offline
  stack's EfficientNet reads the face crop), the three concatenated;
- the expert's own expression reading (the offline stack's: face-api's expression net, stored with the
  features; the expression token's input), alone and next to the landmarks;
- FER's and facex's 7 log-probabilities (`emo_llama.expert.fer_net`, mini's render judge; `expert.facex`,
  mini's validity gate; both trained on real faces) of each frame's stored 112 px face crop; a line before the
  probes gives FER's own answers on the real photos.
`VISION_ZEROED` adds "all three" with the vision tokens zeroed (after standardisation, so set to their
training mean) on a random share of the training frames, one draw per `--mask-seeds` seed.

With `--model`, also the trained model's frame tokens read without the LLM: cosine against the class
words (`emo_llama.train.align`), mean over a sample's frames and its context/visual/landmark tokens.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy.special import log_softmax
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from emo_llama.config import TrainConfig
from emo_llama.data import compute_metrics
from emo_llama.data.splits import load_splits
from emo_llama.expert import get_expression_net
from emo_llama.faces.samples import real_face_set
from emo_llama.features import MediaFeatures, extract_to_store
from emo_llama.model import EmoLlama, get_stack
from emo_llama.model.parts.projectors import normalise_landmarks
from emo_llama.prompts import category_question
from emo_llama.train.align import class_word_cosines, class_word_embeddings
from emo_llama.utils import torch_threads

FeatureFn = Callable[[MediaFeatures], torch.Tensor]  # -> (frames, dims)
Labelled = Sequence[tuple[torch.Tensor, str]]  # (one media's feature rows, its label)


def landmark_rows(media: MediaFeatures) -> torch.Tensor:
    return normalise_landmarks(media.landmarks_68).flatten(1)


def face_token_rows(media: MediaFeatures) -> torch.Tensor:
    return media.face_tokens.mean(1)


def vision_token_rows(media: MediaFeatures) -> torch.Tensor:
    return media.vision_tokens.mean(1)


@functools.cache
def fer_net():
    return get_expression_net(name="fer", device="cpu")


@functools.cache
def facex_net():
    return get_expression_net(name="facex", device="cpu")


def fer_log_probs(media: MediaFeatures) -> torch.Tensor:
    """FER's log-probabilities over its 7 classes (`fer_net().classes`) of each frame's 112 px display crop."""
    return fer_net()(media.crops.permute(0, 3, 1, 2)).clamp_min(1e-12).log()


def facex_log_probs(media: MediaFeatures) -> torch.Tensor:
    """facex's log-probabilities of each frame's 112 px display crop (the `facex` expert's reading)."""
    return facex_net()(media.crops.permute(0, 3, 1, 2)).clamp_min(1e-12).log()


def expert_log_probs(media: MediaFeatures) -> torch.Tensor:
    """The stack's expert's own reading (stored with the features: the expression token's input)."""
    if media.expression_probs.shape[-1] == 0:
        raise ValueError("these features hold no expression reading: the stack's expert has none")
    return media.expression_probs.clamp_min(1e-12).log()


def concatenated(*parts: FeatureFn) -> FeatureFn:
    return lambda media: torch.cat([part(media).float() for part in parts], dim=1)


ALL_THREE = "all three (landmarks + face tokens + vision tokens)"
FER = "FER's 7 log-probabilities"
FEATURES: dict[str, FeatureFn] = {
    "landmarks (normalised 68 points)": landmark_rows,
    "face tokens (mean-pooled)": face_token_rows,
    "vision tokens of the face crop (mean-pooled)": vision_token_rows,
    ALL_THREE: concatenated(landmark_rows, face_token_rows, vision_token_rows),
    "the expert's reading (7 log-probabilities; the expression token's input)": expert_log_probs,
    "landmarks + the expert's reading": concatenated(landmark_rows, expert_log_probs),
    FER: fer_log_probs,
    "facex's 7 log-probabilities": facex_log_probs,
}
VISION_ZEROED = (0.5, 0.8)  # shares of ALL_THREE's training frames whose vision tokens are zeroed


def frame_rows(examples: Labelled, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(frames, dims) float64 and each frame's class index (a media's frames all take its label)."""
    index = {c: i for i, c in enumerate(classes)}
    x = torch.cat([rows for rows, _ in examples]).double().numpy()
    y = np.concatenate([np.full(len(rows), index[label]) for rows, label in examples])
    return x, y


def zero_rows(x: np.ndarray, columns: slice, share: float, seed: int) -> np.ndarray:
    """A copy of x with `columns` set to 0 on round(share * rows) rows drawn with `seed`."""
    out = x.copy()
    chosen = np.random.default_rng(seed).choice(len(x), size=round(share * len(x)), replace=False)
    out[np.ix_(chosen, np.arange(x.shape[1])[columns])] = 0.0
    return out


class Probe:
    """Standardise with the training rows, then an L2-regularised multinomial logistic regression."""

    def __init__(self, x: np.ndarray, y: np.ndarray, C: float, zeroed: tuple[slice, float, int] | None = None):
        self.mean, self.std = x.mean(0), x.std(0) + 1e-6
        z = (x - self.mean) / self.std
        if zeroed is not None:
            z = zero_rows(z, *zeroed)
        # One BLAS thread, for the reason feature_rows runs on one torch thread: on a busy 2-core machine
        # tests/test_benchmarks_probe.py's fits once took 87 s with 2 OpenBLAS threads instead of 0.6 s.
        with threadpool_limits(limits=1, user_api="blas"):
            self.model = LogisticRegression(C=C, max_iter=5000).fit(z, y)
        self.columns = self.model.classes_  # the class indices seen in training

    def predict(self, rows: torch.Tensor) -> int:
        """Class index of one media: the argmax of its frames' mean log-probability."""
        logits = self.model.decision_function((rows.double().numpy() - self.mean) / self.std)
        if logits.ndim == 1:  # two classes seen in training: the score is class 1's logit against class 0's
            logits = np.stack([np.zeros_like(logits), logits], axis=1)
        return int(self.columns[int(log_softmax(logits, axis=1).mean(0).argmax())])


def score(probe: Probe, test: Labelled, real: Labelled, classes: Sequence[str]) -> dict:
    test_pred = [classes[probe.predict(rows)] for rows, _ in test]
    real_pred = [classes[probe.predict(rows)] for rows, _ in real]
    return {"uar": compute_metrics([label for _, label in test], test_pred, classes)["uar"],
            "real_right": sum(p == label for p, (_, label) in zip(real_pred, real)),
            "real_called": Counter(real_pred)}


def probe_table(train: dict[str, Labelled], test: dict[str, Labelled], real: dict[str, Labelled],
                classes: Sequence[str], C: float, mask_seeds: Sequence[int] = (0,),
                vision_dims: int | None = None) -> list[dict]:
    """One result per row of FEATURES (those present in `train`), then the VISION_ZEROED rows when
    ALL_THREE is present and `vision_dims` (its last columns) is given. A zeroed row averages UAR over
    `mask_seeds` and lists the real-photo count of each."""
    results = []
    for name in train:
        x, y = frame_rows(train[name], classes)
        results.append({"name": name, "dims": x.shape[1],
                        **score(Probe(x, y, C), test[name], real[name], classes)})
        print(row_line(results[-1]), flush=True)
    if ALL_THREE in train and vision_dims:
        x, y = frame_rows(train[ALL_THREE], classes)
        for share in VISION_ZEROED:
            runs = [score(Probe(x, y, C, (slice(-vision_dims, None), share, seed)),
                          test[ALL_THREE], real[ALL_THREE], classes) for seed in mask_seeds]
            results.append({"name": f"all three, vision tokens zeroed on {share:.0%} of training frames",
                            "dims": x.shape[1], "uar": float(np.mean([r["uar"] for r in runs])),
                            "real_right": " / ".join(str(r["real_right"]) for r in runs),
                            "real_called": sum((r["real_called"] for r in runs), Counter())})
            print(row_line(results[-1]), flush=True)
    return results


def called_text(called: Counter) -> str:
    return ", ".join(f"{label} {n}" for label, n in called.most_common())


def row_line(r: dict) -> str:
    return (f"{r['name']:<80} dims {r['dims']:>5}  mini-test UAR {r['uar']:.3f}  real photos right "
            f"{r['real_right']}  (called: {called_text(r['real_called'])})")


def markdown_table(results: list[dict], real_total: int) -> str:
    lines = [f"| features the probe reads | real photos right (of {real_total}) | mini-test UAR |", "|---|---|---|"]
    lines += [f"| {r['name']} | {r['real_right']} | {r['uar']:.2f} |" for r in results]
    return "\n".join(lines)


def feature_rows(examples: Sequence[tuple[MediaFeatures, str]]) -> dict[str, list[tuple[torch.Tensor, str]]]:
    """{feature name: [(that feature's rows of each media, its label)]}, each media read once."""
    rows: dict[str, list[tuple[torch.Tensor, str]]] = {name: [] for name in FEATURES}
    # One torch thread: these are small ops (FER on 1-8 crops), and on a 2-core machine busy with other
    # processes a second thread only spins: FER over 40 media took 26 s with 2 threads, 0.14 s with 1.
    with torch_threads(1):
        for media, label in examples:
            for name, fn in FEATURES.items():
                rows[name].append((fn(media).float(), label))
    return rows


def fer_answer(log_probs: torch.Tensor, classes: Sequence[str]) -> str:
    """FER's own answer for one media from its FER rows: the top class (mean over frames) among `classes`."""
    ranked = [fer_net().classes[i] for i in log_probs.mean(0).argsort(descending=True).tolist()]
    return next(c for c in ranked if c in classes)


@torch.no_grad()
def token_probe_uar(model, test: Sequence[tuple[MediaFeatures, str]], classes, questions) -> float:
    words = class_word_embeddings(model, classes)
    predicted = []
    for (media, _), question in zip(test, questions):
        batch = model.make_batch([media], [[(question, None)]], generation=True, device=model.device)
        cosine = class_word_cosines(model.frame_tokens(batch), words)
        predicted.append(classes[int(cosine.mean((0, 1)).argmax())])
    return compute_metrics([label for _, label in test], predicted, classes)["uar"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="mini")
    ap.add_argument("--stack", default="offline")
    ap.add_argument("--C", type=float, default=0.1, help="inverse L2 strength of the probes (scikit-learn's C)")
    ap.add_argument("--mask-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--train-limit", type=int, default=None)
    ap.add_argument("--eval-limit", type=int, default=None)
    ap.add_argument("--store-root", default=None, help="feature store folder (unset: the one training uses)")
    ap.add_argument("--model", default=None, help="a folder written by EmoLlama.save_pretrained")
    args = ap.parse_args()

    start = time.perf_counter()
    cfg = TrainConfig(dataset=args.dataset, stack=args.stack, train_limit=args.train_limit,
                      eval_limit=args.eval_limit)
    splits = load_splits(cfg)
    classes, train_samples, test_samples = splits.classes, splits.train, splits.test
    extractor, store, errors = extract_to_store(get_stack(args.stack), train_samples + test_samples,
                                                cfg.max_frames, "cpu", root=args.store_root)
    splits = {"train": [s for s in train_samples if str(s.media) in store],
              "test": [s for s in test_samples if str(s.media) in store]}
    real_items = real_face_set()  # through the extractor's per-media cache, as the model's real-face check
    real = [(extractor(item.media), item.label) for item in real_items]
    rows = {"train": feature_rows([(store[s.media], s.label) for s in splits["train"]]),
            "test": feature_rows([(store[s.media], s.label) for s in splits["test"]]),
            "real": feature_rows(real)}
    print(f"{args.dataset}: {len(splits['train'])} train / {len(splits['test'])} test samples "
          f"({len(errors)} unreadable), {sum(len(r) for r, _ in rows['train'][ALL_THREE])} training frames; "
          f"{len(real_items)} real photos; chance UAR {1 / len(classes):.3f}; "
          f"features ready in {time.perf_counter() - start:.0f} s")
    fer_right = sum(fer_answer(r, classes) == label for r, label in rows["real"][FER])
    print(f"FER's own answer on the stored 112 px crops of the real photos: {fer_right} of {len(real_items)} right")

    vision_dims = vision_token_rows(real[0][0]).shape[1]
    results = probe_table(rows["train"], rows["test"], rows["real"], classes, args.C, args.mask_seeds, vision_dims)
    if args.model:
        model = EmoLlama.from_pretrained(args.model, device="cpu")
        test = [(store[s.media], s.label) for s in splits["test"]]
        uar = token_probe_uar(model, test, classes, [category_question(classes, s.kind) for s in splits["test"]])
        print(f"trained frame tokens vs class words (no LLM)  test UAR {uar:.3f}")
    print(f"\nprobes: C={args.C}, vision zeroed over mask seeds {args.mask_seeds}; "
          f"wall {time.perf_counter() - start:.0f} s\n")
    print(markdown_table(results, len(real_items)))


if __name__ == "__main__":
    main()

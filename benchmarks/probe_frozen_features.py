"""How much of the task do the frozen features carry? Linear probes on mini's unseen-identity test split.

    python benchmarks/probe_frozen_features.py [--dataset mini] [--stack offline] [--model runs/05_train/model]

EMO-LLaMA trains nothing before its Clue Aggregator: vision tokens, face tokens and landmarks are frozen.
A linear classifier on each of them (mean-pooled tokens; normalised 68-point shape) bounds what the
trained modules can read from that feature without overfitting. Each frame of a training clip takes the
clip's label; a test clip averages its frames' log-probabilities. Prints the test UAR per feature, so the
model's UAR in `runs/05_train/metrics.json` can be read against it. With `--model`, also the trained
model's frame tokens read without the LLM: cosine against the class words (`emo_llama.train.align`), mean over
a sample's frames and its context/visual/landmark tokens.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F


def frame_features(media, kind: str) -> torch.Tensor:
    from emo_llama.model.parts.projectors import normalise_landmarks

    parts = {"landmarks_68": lambda m: normalise_landmarks(m.landmarks_68).flatten(1),
             "face_tokens": lambda m: m.face_tokens.mean(1),
             "vision_tokens": lambda m: m.vision_tokens.mean(1)}
    names = list(parts) if kind == "all" else [kind]
    return torch.cat([parts[n](media).float() for n in names], dim=1)


def probe_uar(train, test, classes, kind: str, steps: int = 300) -> float:
    from emo_llama.data import compute_metrics

    index = {c: i for i, c in enumerate(classes)}
    x = [frame_features(m, kind) for m, _ in train]
    y = torch.cat([torch.full((len(f),), index[label]) for f, (_, label) in zip(x, train)])
    x = torch.cat(x)
    mean, std = x.mean(0), x.std(0) + 1e-5
    torch.manual_seed(0)
    probe = torch.nn.Linear(x.shape[1], len(classes))
    optimizer = torch.optim.AdamW(probe.parameters(), lr=1e-2, weight_decay=1e-2)
    for _ in range(steps):
        loss = F.cross_entropy(probe((x - mean) / std), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        predicted = [classes[int(probe((frame_features(m, kind) - mean) / std).log_softmax(-1).mean(0).argmax())]
                     for m, _ in test]
    return compute_metrics([label for _, label in test], predicted, classes)["uar"]


@torch.no_grad()
def token_probe_uar(model, test, classes, questions) -> float:
    from emo_llama.data import compute_metrics
    from emo_llama.train.align import class_word_cosines, class_word_embeddings

    words = class_word_embeddings(model, classes)
    predicted = []
    for (media, _), question in zip(test, questions):
        batch = model.make_batch([media], [[(question, None)]], generation=True, device=model.device)
        cosine = class_word_cosines(model.frame_tokens(batch), words)
        predicted.append(classes[int(cosine.mean((0, 1)).argmax())])
    return compute_metrics([label for _, label in test], predicted, classes)["uar"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="mini")
    ap.add_argument("--stack", default="offline")
    ap.add_argument("--model", default=None, help="a folder written by EmoLlama.save_pretrained")
    args = ap.parse_args()

    from emo_llama.data import get_dataset
    from emo_llama.features import FeatureExtractor
    from emo_llama.model import get_stack

    splits = {s: get_dataset(args.dataset, split=s) for s in ("train", "test")}
    extractor = FeatureExtractor.from_stack(get_stack(args.stack), device="cpu")
    data = {s: list(zip(extractor.extract_many([x.media for x in d.samples]), [x.label for x in d.samples]))
            for s, d in splits.items()}
    classes = splits["train"].classes
    print(f"{args.dataset}: {len(data['train'])} train / {len(data['test'])} test samples, chance UAR "
          f"{1 / len(classes):.3f}")
    for kind in ("landmarks_68", "face_tokens", "vision_tokens", "all"):
        print(f"linear probe on {kind:<14} test UAR {probe_uar(data['train'], data['test'], classes, kind):.3f}")
    if args.model:
        from emo_llama.model import EmoLlama
        from emo_llama.prompts import category_question

        model = EmoLlama.from_pretrained(args.model, device="cpu")
        questions = [category_question(classes, s.kind) for s in splits["test"].samples]
        uar = token_probe_uar(model, data["test"], classes, questions)
        print(f"trained frame tokens vs class words (no LLM)  test UAR {uar:.3f}")


if __name__ == "__main__":
    main()

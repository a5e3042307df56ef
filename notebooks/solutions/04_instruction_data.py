"""Worked solutions to the exercises at the end of notebook 04 (instruction data).

    python notebooks/solutions/04_instruction_data.py

Only the instruction builders, the sampler and the metrics run here, on hand-made `Sample` records (a label
and a file name are all an instruction needs), so no dataset has to be built or downloaded; it takes well
under a second. tests/test_solutions.py runs `solve` so that these answers never rot.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch

from emo_llama.data import (
    BASIC7,
    OfflineConversationGenerator,
    Sample,
    agr_prompt,
    category_instruction,
    compute_metrics,
    make_weighted_sampler,
    parse_answer,
)
from emo_llama.data.sampling import long_tailed, resampled_counts
from emo_llama.train import TrainConfig
from emo_llama.train.items import build_items


def balanced_samples(per_class: int = 40) -> list[Sample]:
    """A balanced training split (mini's is nearly so): `per_class` images of each of the 7 basic classes."""
    return [Sample(id=f"{label}-{i:03d}", media=Path(f"images/{label}-{i:03d}.jpg"), label=label, split="train")
            for label in BASIC7 for i in range(per_class)]


def exercise_1(seed: int = 0) -> dict:
    """Exercise 1: write, by hand, every instruction item that training builds for ONE sample (a happy face, age
    ~31, female), then compare with what `build_items` (what `emo_llama.train` uses) makes of it.

    Answer: the records first. The category record is one human turn - the `<image>` placeholder and a question
    that lists all 7 classes - answered with the bare label `happiness`; with the paper's zero-shot guard
    appended, the answer becomes `My choice is: happiness`. The offline conversation has up to three turns,
    built only from what is known: the label ("The person looks happy; ..."), the label's prototype Action
    Units, and the AGR estimate with a warning that it can be wrong. Training with the default `TrainConfig`
    (`instruction_types=("category", "conversation")`) makes two items of the sample: the category item with
    the bare label (`choice_share=0.0`, so no guard) and a conversation cut to its first turn
    (`conversation_turns=1`), so the AGR turn is not trained on. The AGR sentence still reaches the model:
    `make_batch` puts the expert's own sentence (`MediaFeatures.agr`) before every question while `use_agr`
    is on (notebook 05 shows it in the batch view).
    """
    sample = Sample(id="demo-happy", media=Path("images/demo-happy.jpg"), label="happiness", split="train")
    agr = agr_prompt(31, "female")
    rng = random.Random(seed)
    plain = category_instruction(sample, BASIC7, rng=rng, phrasing=0)
    guarded = category_instruction(sample, BASIC7, rng=rng, phrasing=0, zero_shot=True)
    talk = OfflineConversationGenerator(seed=seed)(sample, agr=agr)
    items = build_items([sample], BASIC7, TrainConfig(seed=seed), agr_of=lambda s: agr)
    for record in (plain, guarded, talk):
        for turn in record["conversations"]:
            print(f"{turn['from']:>5}: {turn['value']}")
        print()
    print("build_items:", [(item.task, len(item.turns)) for item in items])
    return {"category_answer": plain["conversations"][1]["value"],
            "guarded_answer": guarded["conversations"][1]["value"],
            "question_lists_classes": all(c in plain["conversations"][0]["value"] for c in BASIC7),
            "conversation_turns": len(talk["conversations"]) // 2,
            "conversation_mentions_agr": "31 years" in talk["conversations"][-1]["value"],
            "items": [(item.task, [list(turn) for turn in item.turns]) for item in items]}


def exercise_2(seed: int = 0, imbalance: float = 10.0) -> dict:
    """Exercise 2: cut a long-tailed subset (imbalance 10) of a balanced split and count what one epoch draws,
    with plain shuffling and with the weighted sampler.

    Answer: from 40 images per class `long_tailed` keeps 40, 27, 19, 13, 9, 6 and 4 (n_max * 10^(-k/6), 118 in
    all). Plain shuffling draws each image once, so the epoch is exactly as skewed as the data: the head class
    is 10x the tail, and 'anger' is 3% of the draws. The weighted sampler draws each image with probability
    proportional to 1 / (its class count), with replacement, for the same number of draws: every class carries
    exactly 1/7 of the total weight, so each expects about 17 of the 118 draws. One epoch scatters around that
    (here 9 to 26), so the 4 'anger' images are each seen about 3-4 times while many 'neutral' images are not
    seen at all.
    """
    labels = [s.label for s in balanced_samples()]
    keep = long_tailed(labels, BASIC7, imbalance=imbalance, seed=seed)
    labels = [labels[i] for i in keep]
    stored = {c: labels.count(c) for c in BASIC7}
    shuffled = [labels[i] for i in torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))]
    plain = {c: shuffled.count(c) for c in BASIC7}
    sampler = make_weighted_sampler(labels, generator=torch.Generator().manual_seed(seed))
    resampled = resampled_counts(labels, sampler, BASIC7)
    weights = sampler.weights / sampler.weights.sum()
    share = {c: float(sum(w for w, label in zip(weights.tolist(), labels) if label == c)) for c in BASIC7}
    print("stored   :", stored)
    print("shuffled :", plain)
    print("resampled:", resampled)
    print("expected share of the draws per class:", {c: round(v, 3) for c, v in share.items()})
    return {"stored": stored, "shuffled": plain, "resampled": resampled, "weight_share": share, "labels": labels}


def exercise_3(labels: list[str]) -> dict:
    """Exercise 3: on that long-tailed set, score a model that answers every face "It looks neutral to me."
    Predict its accuracy (WAR) and its UAR before you run `compute_metrics`.

    Answer: the parser reads 'neutral' from every answer, so the model is right on exactly the neutral images:
    WAR = 40 / 118 = 0.34, far above chance (1/7 = 0.14) for a model that never looked at a face. UAR averages
    the recall per class - 1 for neutral, 0 for the six others - so UAR = 1/7 = 0.143, exactly chance. On
    long-tailed data WAR rewards answering the head class; that is why the paper reports UAR, and why a model
    trained without resampling can look good on WAR while learning little (Tab. 9).
    """
    answers = ["It looks neutral to me."] * len(labels)
    predicted = [parse_answer(a, BASIC7) for a in answers]
    metrics = compute_metrics(labels, predicted, BASIC7, raw_answers=answers)
    print(f"WAR {metrics['war']:.3f}  UAR {metrics['uar']:.3f}  (chance 1/7 = {1 / 7:.3f})")
    return {"war": metrics["war"], "uar": metrics["uar"], "neutral_share": labels.count("neutral") / len(labels)}


def solve(seed: int = 0) -> dict:
    two = exercise_2(seed)
    return {"exercise_1": exercise_1(seed), "exercise_2": {k: v for k, v in two.items() if k != "labels"},
            "exercise_3": exercise_3(two["labels"])}


if __name__ == "__main__":
    solve()

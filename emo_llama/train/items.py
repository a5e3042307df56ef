"""Training data for a run: the instruction items and their sampling weights (the samples: `emo_llama.data.splits`).

Items come from three places: category instructions and generated conversations for every training sample
(`instruction_types`, Tab. 6), reasons ("what is the emotion and why?") for every training sample whose AUs are known,
and LLaVA / LLaMA-VID-style JSON records (`instruction_files`).
Data order is a pure function of (seed, epoch) (`emo_llama.data.sampling.epoch_order`), so the step
number is the whole sampler state of a run and N processes see the same samples as one.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from emo_llama.config import TrainConfig
from emo_llama.data import OfflineConversationGenerator, Sample, category_instruction
from emo_llama.data.sampling import inverse_frequency_weights
from emo_llama.data.text.llava_json import read_records
from emo_llama.data.text.reasons import reason_instruction
from emo_llama.utils import repo_path


@dataclass
class TrainItem:
    media: str
    turns: list[tuple[str, str]]
    label: str                 # "" for an instruction-file record (its answer is free text)
    task: str = "category"     # category | conversation | reason | instruction (a JSON record)
    dataset: str = ""          # the training dataset it came from (per-dataset sampling weights)


def record_turns(record: dict) -> list[tuple[str, str]]:
    conv = record["conversations"]
    return [(conv[i]["value"], conv[i + 1]["value"]) for i in range(0, len(conv) - 1, 2)]


# Tab. 6's two, and reasons (issue 25); an empty choice means no instruction tuning.
INSTRUCTION_TYPES = ("category", "conversation", "reason")


def build_items(samples: Sequence[Sample], classes: Sequence[str] | Mapping[str | None, Sequence[str]],
                cfg: TrainConfig, agr_of: Callable[[Sample], str]) -> list[TrainItem]:
    """Category records (a `choice_share` of them ending with the zero-shot guard and 'My choice is: ...') +
    conversations + reasons (`reason_items`). A category question names `classes`, or, given a mapping dataset ->
    classes (a run on several datasets), the classes of the sample's own dataset."""
    classes_of = classes if isinstance(classes, Mapping) else {s.dataset: tuple(classes) for s in samples}
    unknown = sorted(set(cfg.instruction_types) - set(INSTRUCTION_TYPES))
    if unknown:
        raise ValueError(f"instruction_types {unknown}: choose from {INSTRUCTION_TYPES} (none: zero-shot only)")
    rng = random.Random(cfg.seed)
    items = []
    if "category" in cfg.instruction_types:
        for s in samples:
            rec = category_instruction(s, classes_of[s.dataset], rng=rng, zero_shot=rng.random() < cfg.choice_share,
                                       use_caption=cfg.descriptive_text, use_text=cfg.use_text)
            items.append(TrainItem(str(s.media), record_turns(rec), s.label, "category", s.dataset or ""))
    if "conversation" in cfg.instruction_types:
        generator = OfflineConversationGenerator(seed=cfg.seed, turns=cfg.conversation_turns)
        for s in samples:
            rec = generator(s, agr=agr_of(s) if cfg.use_agr else None)
            items.append(TrainItem(str(s.media), record_turns(rec), s.label, "conversation", s.dataset or ""))
    if "reason" in cfg.instruction_types:
        items += reason_items(samples, classes_of, cfg)
    return items


def reason_items(samples: Sequence[Sample], classes_of: Mapping[str | None, Sequence[str]],
                 cfg: TrainConfig) -> list[TrainItem]:
    """A reason item (`reason_instruction`: the AUs with their codes, the voice, then the emotion) for each sample
    whose AUs are known (`Sample.aus` set); samples without AU coding get none, since a reason must not name AUs
    nobody coded. The voice is described when the sample has one (`Sample.voice`) and the model hears the audio
    (`use_audio`): a model that gets no audio tokens is not taught to describe a voice. Phrasings come from their own seeded generator, so adding reasons leaves
    the category items as they were."""
    rng = random.Random(cfg.seed)
    items = []
    for s in samples:
        if s.aus is not None:
            rec = reason_instruction(s, classes_of[s.dataset], rng=rng, use_voice=cfg.use_audio)
            items.append(TrainItem(str(s.media), record_turns(rec), s.label, "reason", s.dataset or ""))
    return items


def item_weights(items: list[TrainItem], resample: bool, conversation_share: float,
                 dataset_weights: Mapping[str, float] | None = None) -> torch.Tensor | None:
    """Sampling weights. Conversations, reasons and instruction-file records (every item that is not a category
    item) get `conversation_share` of the draws, equally; category items share the rest: split between the training
    datasets by `dataset_weights` (normalised; unset: by size), and within a dataset inverse-frequency by label when
    `resample` (the paper resamples category data only, Tab. 9). None means plain shuffling (one kind of item,
    nothing to resample or reweigh)."""
    category = [i for i in items if i.task == "category"]
    n_cat, n_other = len(category), len(items) - len(category)
    sizes: dict[str, int] = {}
    for i in category:
        sizes[i.dataset] = sizes.get(i.dataset, 0) + 1
    share = {d: n / max(1, n_cat) for d, n in sizes.items()}
    if dataset_weights:
        missing = sorted(set(sizes) - set(dataset_weights))
        if missing:
            raise ValueError(f"dataset_weights names {sorted(dataset_weights)} but items come from {missing} too")
        total = sum(dataset_weights[d] for d in sizes)
        share = {d: dataset_weights[d] / total for d in sizes}
    reweighed = any(abs(share[d] - sizes[d] / n_cat) > 1e-9 for d in sizes)
    if n_cat == 0 or (n_other == 0 and not resample and not reweighed):
        return None  # one kind of item and nothing to resample: plain shuffling (Tab. 9's "off" row)
    if n_other == 0:
        conversation_share = 0.0
    elif not resample and not reweighed and abs(conversation_share - n_other / len(items)) < 1e-9:
        return None  # plain shuffling
    within: dict[int, float] = {}  # id(item) -> its weight inside its dataset's category items (sums to 1)
    for d in sizes:
        mine = [i for i in category if i.dataset == d]
        values = inverse_frequency_weights([i.label for i in mine], total=1.0) if resample else [1.0 / len(mine)] * len(mine)
        within.update({id(i): float(v) for i, v in zip(mine, values)})
    w = [(1.0 - conversation_share) * share[i.dataset] * within[id(i)] if i.task == "category"
         else conversation_share / n_other for i in items]
    return torch.tensor(w, dtype=torch.double)


def instruction_file_items(cfg: TrainConfig) -> tuple[list[TrainItem], list[Sample], list[str]]:
    """`instruction_files`' records as items, their media as samples (for the feature store), and the bad records
    named. A record's image/video path is relative to `instruction_root` (unset: its file's folder); a record
    whose media is missing, or that has no media, is bad: named and counted, or raising when `instruction_strict`."""
    items, media, bad = [], {}, []
    for name in cfg.instruction_files:
        path = repo_path(name)
        records, skipped = read_records(path, strict=cfg.instruction_strict)
        bad += skipped
        root = repo_path(cfg.instruction_root) if cfg.instruction_root else path.parent
        for n, rec in records:
            kind = "video" if "video" in rec else "image"
            where = f"{path} record {n} (id={rec.get('id')!r})"
            file = (root / rec[kind]) if kind in rec else None  # an absolute path stays itself under `/`
            problem = ("has no image or video: the kit trains on media records only" if file is None
                       else None if file.exists() else f"its {kind} {file} does not exist")
            if problem:
                if cfg.instruction_strict:
                    raise FileNotFoundError(f"{where}: {problem} (instruction_strict=False names and skips it)")
                bad.append(f"{where}: {problem}")
                continue
            turns = record_turns(rec)  # the prompt builder takes <image> out and places the media itself
            items.append(TrainItem(str(file), turns, "", "instruction", "instructions"))
            media.setdefault(str(file), Sample(id=str(rec["id"]), media=file, label="", split="train", kind=kind,
                                               dataset="instructions"))
    return items, list(media.values()), bad


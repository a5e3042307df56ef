"""Scores of free-text reasons ("the lip corners rise (AU12) and the cheeks lift (AU6); the voice is high and fast:
happiness") that need no paid service, and an LLM judge as an option.

Offline, deterministic:
- `reason_label`: the emotion a reason concludes with;
- `reason_aus`: the Action Units a reason names, by code or by FACS name, negated mentions left out;
- `parse_au_coding` (declared in `emo_llama.data.text.reasons`, which writes the training reasons): a dataset's AU
  coding ("4+L10+R12", CASME II's column; mini's "6+12") as AU codes, laterality kept aside;
- `clue_scores`: label accuracy of the reasons and precision / recall of the AUs they name against the AUs that
  are there (mini: by construction; real data: the dataset's AU coding);
- `score_reasons`: a model asked the reason question on test samples with AU coding, its answers scored so.

Optional: `LLMJudge`, any OpenAI-compatible chat-completions endpoint asked for the two overlap scores that
EMER and Emotion-LLaMA report (clue overlap and label overlap, 0 to 10). Nothing in the kit creates one: it is off
unless a user builds it with an endpoint, and tests give it a fake transport instead of the network.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from emo_llama.data.labels import CANONICAL, try_canonical
from emo_llama.data.parsing import parse_answer
from emo_llama.data.text.merr import FACS_NAME_TO_AU, au_code, normalise_au_name
from emo_llama.data.text.reasons import parse_au_coding, reason_question
from emo_llama.progress import progress as progress_bar

# --- the label a reason concludes with ---------------------------------------------------------------------------

_SENTENCES = re.compile(r"[.!?\n]+")
_CLAUSES = re.compile(r"[.!?;,\n]+")
# Words the kit's parser reads as a class (happiness) that reasons use as visual clues ("the smile looks forced, so
# fear"): in a reason they describe a face, not the conclusion, and are not read as a label.
_CLUE_WORDS = re.compile(r"\b(?:smile|smiling)\b", re.IGNORECASE)


def reason_label(reason: str | None, classes: Sequence[str]) -> str | None:
    """The class (one of `classes`) a reason concludes with, or None when it names none.

    Reasons put their conclusion last ("...; the voice is high and fast: happiness", "...indicates that she is
    experiencing surprise."), so the rule reads from the end, through the kit's answer parser (`parse_answer`:
    synonyms, inflections, negated mentions skipped):
    1. the last sentence's text after its last colon, when it names a class ("...: happiness");
    2. else the clauses (split at . ! ? ; , and line ends) from the last one back: the first clause that names a
       class gives it, and inside a clause the first-named class wins ("so fear rather than happiness" -> fear).
    A colon earlier in the reason ("she says: 'I'm happy to help'. Her frown shows anger.") is not a conclusion,
    which is why rule 1 looks at the last sentence only. "smile" and "smiling" are clues here, never the label.
    Other emotion words used as clues ("a calm voice") can still be read as the label when the reason names no
    emotion after them.
    """
    if reason is None or not str(reason).strip():
        return None
    text = _CLUE_WORDS.sub(" ", str(reason))
    sentences = [s for s in _SENTENCES.split(text) if s.strip()]
    if sentences and ":" in sentences[-1]:
        found = parse_answer(sentences[-1].rpartition(":")[2], classes)
        if found is not None:
            return found
    for clause in reversed(_CLAUSES.split(text)):
        found = parse_answer(clause, classes)
        if found is not None:
            return found
    return None


# --- the AUs a reason names ---------------------------------------------------------------------------------------

# A code: "AU12", "AU 12", "AU-12", "AU06"; "+" chains in FACS's notation ("AU6+12", "AU1+AU2"); after the plural
# "AUs" a list ("AUs 6, 12 and 25"). Bare numbers after a comma are not read after a singular "AU" ("AU4, 3 seconds
# later" names AU4 only).
_NUM = r"0*\d{1,2}(?!\d)"
_CODE_MENTION = re.compile(
    rf"\bAU[\s\-]*{_NUM}(?:\s*\+\s*(?:AU[\s\-]*)?{_NUM})*"
    rf"|\bAUs[\s\-]*{_NUM}(?:\s*(?:\+|,|&|\band\b)\s*(?:AU[\s\-]*)?{_NUM})*",
    re.IGNORECASE)


def _phrase_pattern(phrases: Iterable[str]) -> re.Pattern:
    """One regex for normalised phrases ("lip corner puller"), words joined by spaces or hyphens, an "s" allowed at
    the end ("the jaw drops"), longest first so that a long name wins over a shorter one inside it."""
    alternatives = (r"[\s\-]+".join(map(re.escape, p.split())) for p in sorted(phrases, key=len, reverse=True))
    return re.compile(r"\b(" + "|".join(alternatives) + r")s?\b", re.IGNORECASE)


# FACS names from the kit's one table (`emo_llama.data.aus.AU_NAMES`).
_NAME_MENTION = _phrase_pattern(FACS_NAME_TO_AU)
_WORD = re.compile(r"[a-z]+(?:\d+)?|\d+", re.IGNORECASE)
# A mention is negated when one of these words comes at most three words before it, skipping over other AU mentions
# and list words ("no AU4 or AU9": both negated) and never across a clause end or a contrast ("no AU4, but AU12").
_NEGATIONS = frozenset({"no", "not", "without", "never", "nor", "neither", "none", "absence", "lack", "lacks",
                        "lacking"})
_LIST_WORDS = frozenset({"and", "or", "nor", "of", "au", "aus"})
_CLAUSE_END = re.compile(r"[.;:!?\n]|\b(?:but|while|whereas|although|though|yet|however)\b", re.IGNORECASE)
# ...or when it is followed, before a comma or the next AU, by one of these: "AU4 is absent", "AU9 not present".
_ABSENT_AFTER = frozenset({"absent", "missing", "inactive"})
_NOT_SEEN = re.compile(r"^\W*(?:\w+\W+){0,2}?not\s+(?:present|visible|active|shown|seen|detected)\b", re.IGNORECASE)


def _is_code(word: str) -> bool:
    return bool(re.fullmatch(r"(?:au)?\d{1,2}", word, re.IGNORECASE))


def _negated(text: str, start: int, end: int) -> bool:
    before = text[:start]
    ends = list(_CLAUSE_END.finditer(before))
    if ends:
        before = before[ends[-1].end():]
    words = [w.lower() for w in reversed(_WORD.findall(before.replace("n't", " not")))]
    # Skip the other AU mentions and list words of a list ("no AU4, AU9 or AU15") before looking three words back.
    scoped = [w for w in words if not _is_code(w) and w not in _LIST_WORDS]
    if any(w in _NEGATIONS for w in scoped[:3]):
        return True
    after = text[end:].split(",", 1)[0]
    clause_end = _CLAUSE_END.search(after)
    after = after[:clause_end.start()] if clause_end else after
    after_words = []
    for word in _WORD.findall(after)[:3]:
        if _is_code(word):  # "AU12 present, AU4 absent": AU4's "absent" is not AU12's
            break
        after_words.append(word.lower())
    return any(w in _ABSENT_AFTER for w in after_words) or bool(_NOT_SEEN.match(after))


def reason_aus(reason: str | None, phrases: Mapping[str, int] | None = None) -> set[str]:
    """The AUs a reason names, as codes ("AU12"): by code ("AU12", "AU 12", "AU6+12", "AUs 6 and 12") or by FACS
    name ("lip corner puller", from `emo_llama.data.aus.AU_NAMES`); `phrases` adds more phrase -> AU number pairs
    (e.g. a table of plain-words clauses) read the same way.

    Negated mentions do not count: "no AU4", "without a brow lowerer", "neither AU4 nor AU9", "AU4 is absent",
    "AU9 not present" name nothing; a negation reaches three words forward (skipping list words and other AU
    codes: "no AU4, AU9 or AU15" negates all three) and stops at a clause end or a contrast word ("no AU4, but
    AU12": AU12 counts). Plain paraphrases ("the lip corners rise") are not read unless `phrases` lists them.
    """
    if reason is None or not str(reason).strip():
        return set()
    text = str(reason)
    found: set[str] = set()
    for match in _CODE_MENTION.finditer(text):
        if _negated(text, match.start(), match.end()):
            continue
        body = re.sub(r"^AUs?[\s\-]*", "", match.group(0), flags=re.IGNORECASE)
        for number in map(int, re.findall(r"\d{1,3}", body)):
            if number:  # "AU0" (a model's slip) is no Action Unit
                found.add(au_code(number))
    lookup, pattern = FACS_NAME_TO_AU, _NAME_MENTION
    if phrases:
        lookup = {**FACS_NAME_TO_AU, **{normalise_au_name(p): int(n) for p, n in phrases.items()}}
        pattern = _phrase_pattern(lookup)
    for match in pattern.finditer(text):
        if not _negated(text, match.start(), match.end()):
            found.add(au_code(lookup[normalise_au_name(match.group(1))]))  # group 1 leaves out the "s"
    return found


def _au_set(present: object) -> set[str]:
    if isinstance(present, str):
        return set(parse_au_coding(present))
    if present is None:
        return set()
    return {au_code(a) for a in present}


# --- the scores ---------------------------------------------------------------------------------------------------


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def clue_scores(reasons: Sequence[str | None], labels: Sequence[str], present_aus: Sequence[object],
                classes: Sequence[str] | None = None) -> dict:
    """Label accuracy of the reasons and clue precision / recall of the AUs they name.

    `labels` are the true classes (any spelling the kit reads); `present_aus` per sample the AUs that are there:
    codes or numbers (mini: its AUs by construction), or a coding string such as CASME II's "4+L10" (read by
    `parse_au_coding`). `classes`: the classes a reason's label is read from (default: every canonical class).

    Returns a dict:
    - `label_accuracy`: share of reasons whose `reason_label` is the true class (a reason naming no class is
      wrong and also counted in `unreadable_labels`);
    - `clue_precision_micro` / `clue_recall_micro` / `clue_f1_micro`: pooled over samples: correct AU mentions /
      all AU mentions, correct mentions / all AUs present;
    - `clue_precision_macro` / `clue_recall_macro`: the mean over AUs (each AU the reasons name, resp. each AU
      present somewhere) of that AU's precision, resp. recall, so that rare AUs weigh as much as AU12;
    - `per_au`: code -> {"named", "present", "hits"} counts; `predicted`, `named`: per sample, the label read and
      the AUs named (sorted codes).
    A ratio with nothing to divide by (no AU named anywhere, none present) is None, not 0.
    """
    if not (len(reasons) == len(labels) == len(present_aus)):
        raise ValueError(f"reasons, labels and present_aus must have one entry per sample, got {len(reasons)}, "
                         f"{len(labels)} and {len(present_aus)}")
    if not reasons:
        raise ValueError("no reasons to score")
    classes = tuple(classes) if classes is not None else CANONICAL
    predicted, named_lists = [], []
    correct = unreadable = hits = n_named = n_present = 0
    per_au: dict[str, dict[str, int]] = {}
    for reason, label, present in zip(reasons, labels, present_aus, strict=True):
        guess = reason_label(reason, classes)
        predicted.append(guess)
        if guess is None:
            unreadable += 1
        elif (try_canonical(guess) or guess) == (try_canonical(label) or label):
            correct += 1
        named, there = reason_aus(reason), _au_set(present)
        named_lists.append(sorted(named, key=lambda c: int(c[2:])))
        hits += len(named & there)
        n_named += len(named)
        n_present += len(there)
        for code in named | there:
            counts = per_au.setdefault(code, {"named": 0, "present": 0, "hits": 0})
            counts["named"] += code in named
            counts["present"] += code in there
            counts["hits"] += code in named and code in there
    precision, recall = _ratio(hits, n_named), _ratio(hits, n_present)
    named_aus = [c for c in per_au.values() if c["named"]]
    present_aus_counts = [c for c in per_au.values() if c["present"]]
    return {
        "n": len(reasons),
        "label_accuracy": correct / len(reasons),
        "unreadable_labels": unreadable,
        "clue_precision_micro": precision,
        "clue_recall_micro": recall,
        "clue_f1_micro": (2 * precision * recall / (precision + recall)
                          if precision is not None and recall is not None and precision + recall else None),
        "clue_precision_macro": _ratio(sum(c["hits"] / c["named"] for c in named_aus), len(named_aus)),
        "clue_recall_macro": _ratio(sum(c["hits"] / c["present"] for c in present_aus_counts),
                                    len(present_aus_counts)),
        "per_au": dict(sorted(per_au.items(), key=lambda item: int(item[0][2:]))),
        "predicted": predicted,
        "named": named_lists,
    }


def score_reasons(model, bank, samples: Sequence, classes: Sequence[str], batch_size: int = 8,
                  max_new_tokens: int = 128, progress: bool = False, use_voice: bool = True) -> dict:
    """A model's reasons on test samples, scored offline (`clue_scores`) against the samples' own AU coding.

    Every sample with AU coding (`Sample.aus` set) is asked REASON_QUESTIONS' first phrasing, asking for the voice
    too when the sample has one and `use_voice` (as training asks: pass the model's `use_audio`), with its features
    `bank[str(sample.media)]`; greedy answers of at most `max_new_tokens` tokens (the longest mini reason, fear's
    seven AUs and a voice, is 82 SmolLM2 tokens: a reason cut short loses its conclusion, so the default leaves
    room). Samples without AU coding have nothing to score the clues against: they are not asked, and counted in
    `skipped_without_aus`. `answers`: per asked sample, its id, true label, true AUs
    (sorted codes) and the reason. Raises ValueError when no sample has AU coding.
    """
    coded = [s for s in samples if s.aus is not None]
    if not coded:
        raise ValueError(f"none of the {len(samples)} samples has AU coding (Sample.aus): no reasons to score")
    questions = [reason_question(s.kind, classes, 0, ask_voice=use_voice and s.voice is not None) for s in coded]
    model.eval()
    reasons: list[str] = []
    starts = range(0, len(coded), batch_size)
    for start in progress_bar(starts, desc="reasons", disable=not progress):
        chunk = coded[start: start + batch_size]
        answers = model.generate([bank[str(s.media)] for s in chunk], questions[start: start + batch_size],
                                 max_new_tokens=max_new_tokens, require_face=False, paths=[s.media for s in chunk])
        reasons += [str(a) for a in answers]
    truths = [sorted(parse_au_coding(s.aus), key=lambda c: int(c[2:])) for s in coded]
    scores = clue_scores(reasons, [s.label for s in coded], truths, classes)
    scores["answers"] = [{"id": s.id, "label": s.label, "aus": aus, "reason": reason}
                         for s, aus, reason in zip(coded, truths, reasons, strict=True)]
    scores["skipped_without_aus"] = len(samples) - len(coded)
    return scores


# --- the optional LLM judge ---------------------------------------------------------------------------------------

# EMER's idea (Lian et al. 2023; Emotion-LLaMA reports it as Clue Overlap and Label Overlap): an LLM reads a
# reference explanation and a candidate one and scores, 0 to 10, how far the candidate's emotional clues overlap
# the reference's, and how far the emotional states they conclude overlap. The wording below is the kit's own.
JUDGE_PROMPT = """Two explanations below describe how the same person in the same clip feels, and why.
The reference explanation comes from annotators; the candidate explanation comes from a model.

Score two things, each as a whole number from 0 to 10.
1. Clue overlap: collect the emotional evidence each explanation relies on (facial movements and Action Units,
   gaze, posture and gestures, tone and speed of the voice, the words spoken, the situation). Give 10 when the
   candidate cites all of the reference's evidence and nothing that contradicts it, 0 when the two share no
   evidence, and a proportional score in between.
2. Label overlap: take the emotional state or states each explanation arrives at. Give 10 when they are the same,
   a middle score for related or partly shared states, and 0 for unrelated or opposite states.

Reference explanation: {reference}

Candidate explanation: {candidate}

Reply with exactly one line and nothing else, in this form:
clue overlap: <number>; label overlap: <number>"""

# transport(url, headers, body, timeout_s) -> the response body; the default posts with urllib.
Transport = Callable[[str, Mapping[str, str], bytes, float], bytes]


class JudgeReplyError(ValueError):
    """The judge's reply holds no readable pair of scores (the message shows the reply)."""


class JudgeScore(NamedTuple):
    clue_overlap: float
    label_overlap: float


_SCORE = r"(\d+(?:\.\d+)?)"
_RANGE = re.compile(r"\b0\s*(?:-|–|to)\s*10\b")
_OUT_OF_TEN = re.compile(r"\s*(?:/\s*10(?:\.0+)?|out\s+of\s+10)\b", re.IGNORECASE)
_CLUE = re.compile(r"clue[^0-9\n]{0,40}?" + _SCORE, re.IGNORECASE)
_LABEL = re.compile(r"label[^0-9\n]{0,40}?" + _SCORE, re.IGNORECASE)
_BARE_NUMBER = re.compile(r"(?<![\w.])" + _SCORE + r"(?!\w)")


def parse_judge_reply(reply: str | None) -> JudgeScore:
    """(clue overlap, label overlap) from the judge's text.

    Reads "clue overlap: 7; label overlap: 6" and its variants ("Clue overlap 7/10", JSON such as
    {"clue_overlap": 7, "label_overlap": 6}); without the two names, a reply of exactly two numbers is read in that
    order. Mentions of the scale ("0-10", "/10", "out of 10") are ignored. Raises JudgeReplyError when neither form
    is there or a score lies outside 0..10.
    """
    if reply is None or not str(reply).strip():
        raise JudgeReplyError("the judge's reply is empty")
    text = _OUT_OF_TEN.sub("", _RANGE.sub(" ", str(reply)))
    clue, label = _CLUE.search(text), _LABEL.search(text)
    if clue is not None and label is not None:
        values = (float(clue.group(1)), float(label.group(1)))
    else:
        numbers = _BARE_NUMBER.findall(text)
        if len(numbers) != 2:
            raise JudgeReplyError(f"cannot read two scores (clue overlap, label overlap) from the judge's reply: "
                                  f"{str(reply)[:300]!r}")
        values = (float(numbers[0]), float(numbers[1]))
    if not all(0 <= v <= 10 for v in values):
        raise JudgeReplyError(f"scores must lie in 0..10, got {values} from the judge's reply: {str(reply)[:300]!r}")
    return JudgeScore(*values)


def _urllib_transport(url: str, headers: Mapping[str, str], body: bytes, timeout_s: float) -> bytes:
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 (the user's endpoint)
            return response.read()
    except urllib.error.HTTPError as err:
        detail = err.read()[:300].decode("utf-8", "replace")
        raise RuntimeError(f"the judge endpoint {url} answered HTTP {err.code}: {detail}") from None


@dataclass
class LLMJudge:
    """EMER-style clue / label overlap from any OpenAI-compatible chat-completions endpoint.

    `base_url` is the API root ("http://localhost:8000/v1", "https://api.openai.com/v1") or the full
    ".../chat/completions" URL; `api_key`, when given, is sent as a bearer token (local servers need none; keep keys
    out of code and notebooks: read them from the environment). `transport` replaces the network call (tests).
    Temperature 0, one request per pair; nothing is retried.
    """

    base_url: str
    model: str
    api_key: str | None = None
    timeout_s: float = 60.0
    transport: Transport | None = None

    def prompt(self, candidate: str, reference: str) -> str:
        return JUDGE_PROMPT.format(candidate=candidate.strip(), reference=reference.strip())

    def build_request(self, candidate: str, reference: str) -> tuple[str, dict[str, str], dict]:
        """(url, headers, JSON body) of one call; pure, so it can be checked without a network."""
        base = self.base_url.rstrip("/")
        url = base if base.endswith("/chat/completions") else base + "/chat/completions"
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        body = {"model": self.model, "temperature": 0,
                "messages": [{"role": "user", "content": self.prompt(candidate, reference)}]}
        return url, headers, body

    def score(self, candidate: str, reference: str) -> JudgeScore:
        """One call: the candidate reason scored against the reference."""
        url, headers, body = self.build_request(candidate, reference)
        raw = (self.transport or _urllib_transport)(url, headers, json.dumps(body).encode("utf-8"), self.timeout_s)
        try:
            content = json.loads(raw)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise JudgeReplyError(f"the endpoint's response is not a chat completion: {raw[:300]!r}") from None
        return parse_judge_reply(content)

    def score_many(self, candidates: Sequence[str], references: Sequence[str]) -> dict:
        """Mean clue and label overlap over pairs, with every pair's scores (`scores`)."""
        if len(candidates) != len(references):
            raise ValueError(f"one reference per candidate: got {len(candidates)} and {len(references)}")
        if not candidates:
            raise ValueError("no reasons to judge")
        scores = [self.score(c, r) for c, r in zip(candidates, references, strict=True)]
        return {"n": len(scores), "clue_overlap": sum(s.clue_overlap for s in scores) / len(scores),
                "label_overlap": sum(s.label_overlap for s in scores) / len(scores), "scores": scores}

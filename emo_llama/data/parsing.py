"""Turn a model's free-form answer into one class name (or None when no class can be read from it)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from emo_llama.data.labels import SYNONYMS, try_canonical

_CHOICE = re.compile(r"my\s+choice\s+is\s*[:\-]?", re.IGNORECASE)
_WORDS = re.compile(r"[a-z]+")
# Words that flip the meaning of the next emotion word ("not happy"): such a mention is skipped.
_NEGATIONS = frozenset({"not", "no", "never", "isn", "isnt", "nor", "without", "hardly"})
# A catch-all class (CASME II's "others": none of the listed emotions) is also an ordinary English word ("compared
# with others, she looks happy"): it is read only when the text names no other class.
_CATCH_ALL = frozenset({"others"})


def _class_lookup(classes: Sequence[str]) -> dict[str, str]:
    """word -> class name for this class list. Classes may be canonical or a dataset's own spelling."""
    lookup: dict[str, str] = {}
    for cls in classes:
        canonical = try_canonical(cls)
        words = set(SYNONYMS.get(canonical, ())) if canonical else set()
        words.add(cls.lower())
        for w in words:
            lookup.setdefault(w, cls)
    return lookup


def _first_class(text: str, lookup: dict[str, str]) -> str | None:
    words = _WORDS.findall(text.lower().replace("n't", " not"))
    catch_all = None
    for i, word in enumerate(words):
        if word in lookup and not (i > 0 and words[i - 1] in _NEGATIONS):
            if try_canonical(lookup[word]) not in _CATCH_ALL:
                return lookup[word]
            catch_all = catch_all or lookup[word]
    return catch_all


def parse_answer(text: str | None, classes: Sequence[str]) -> str | None:
    """The class an answer names, or None (unparseable: scored as wrong and reported separately).

    Reads the part after "My choice is:" first (the zero-shot format), else the whole answer; inside
    it, the first word that is a class name, a synonym or an inflection of one (happy, joyful,
    Happiness!) wins. Case and punctuation are ignored; a negated mention ("not happy") is skipped; a
    catch-all class ("others") wins only when no other class is named.
    """
    if text is None or not str(text).strip():
        return None
    lookup = _class_lookup(classes)
    text = str(text)
    matches = list(_CHOICE.finditer(text))
    match = matches[-1] if matches else None  # when a model restates itself, the last choice is final
    if match is not None:
        found = _first_class(text[match.end():], lookup)
        if found is not None:
            return found
    return _first_class(text, lookup)


def parse_answers(texts: Sequence[str | None], classes: Sequence[str]) -> list[str | None]:
    return [parse_answer(t, classes) for t in texts]

"""Conversation instructions: short face-related Q&A grounded in what is known about a sample.

The paper asked Gemini for conversations grounded in the expression label (plus, for videos, the
central frame and per-second descriptions). Two generators share one interface, `__call__(sample,
agr=None) -> LLaVA record`:
- `OfflineConversationGenerator`: templates filled from the label, the sample's caption / AUs and the
  AGR text. Deterministic, no network: the default everywhere, including tests.
- `LLMConversationGenerator`: the paper's approach through an API (Gemini or any OpenAI-compatible
  endpoint). Off by default, key from the environment, never called in tests.
"""

from __future__ import annotations

import base64
import io
import json
import os
import random
import re
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

from emo_llama.data.aus import describe_aus, label_cues
from emo_llama.data.datasets.base import Sample
from emo_llama.prompts import ADJECTIVES, IMAGE_PLACEHOLDER

_FEEL_QUESTIONS = ("How does the person in the {media} seem to feel?", "What is this person's mood?",
                   "Describe the emotion you can read from this face.")
_CUE_QUESTIONS = ("Which facial movements support that reading?", "What in the face gives the emotion away?",
                  "Can you describe the facial muscle movements you notice?")
_WHO_QUESTIONS = ("What can you tell about the person?", "Could you describe the person briefly?")


@dataclass
class OfflineConversationGenerator:
    """Template conversations that only state what the sample's metadata supports."""

    seed: int = 0
    turns: int = 3

    def __call__(self, sample: Sample, agr: str | None = None, aus: Sequence[int] | None = None) -> dict:
        rng = random.Random(f"{self.seed}-{sample.id}")  # per-sample stream: order-independent output
        media = "video" if sample.kind == "video" else "image"
        label = sample.label.split("_")  # MAFW compound labels carry two emotions
        adjective = " and ".join(ADJECTIVES.get(p, p) if p != "neutral" else "calm" for p in label)
        cues = sample.caption or (describe_aus(aus) if aus is not None else " ".join(label_cues(p) for p in label))
        qa = [(rng.choice(_FEEL_QUESTIONS).format(media=media),
               f"The person looks {adjective}; the expression reads as {' and '.join(label)}.")]
        if cues:
            qa.append((rng.choice(_CUE_QUESTIONS), cues.strip()))
        if agr:
            facts = agr.split(":", 1)[-1].strip().rstrip(".")
            qa.append((rng.choice(_WHO_QUESTIONS),
                       f"From the face alone, a rough estimate is {facts}. Such estimates can be wrong, "
                       f"but the {adjective} expression is clear."))
        qa = qa[: self.turns]
        conv = []
        for i, (q, a) in enumerate(qa):
            conv.append({"from": "human", "value": f"{IMAGE_PLACEHOLDER}\n{q}" if i == 0 else q})
            conv.append({"from": "gpt", "value": a})
        return {"id": f"{sample.id}-conv", media: str(sample.media), "conversations": conv,
                "label": sample.label, "task": "conversation"}


PAPER_STYLE_PROMPT = (
    "You are shown {article} {media} of a person. The annotated facial expression is '{label}'. {extra}"
    "Design a short conversation between a user asking about this {media} and an assistant that sees it: "
    "{n} questions about the face, the person and the facial expression, with answers. Every answer about "
    "the emotion must agree with the label '{label}'; do not invent details you cannot see. Reply with JSON "
    'only: [{{"question": "...", "answer": "..."}}, ...].'
)


@dataclass
class LLMConversationGenerator:
    """The paper's generator through an API. Configure by arguments or the environment:
    EMO_LLAMA_LLM_PROVIDER ("gemini" | "openai"), EMO_LLAMA_LLM_MODEL, EMO_LLAMA_LLM_BASE_URL (for
    OpenAI-compatible servers), and the key in GEMINI_API_KEY / OPENAI_API_KEY (never in code)."""

    provider: str = "gemini"
    model: str = "gemini-1.5-flash"
    base_url: str | None = None
    api_key_env: str | None = None
    n_questions: int = 3
    timeout_s: float = 60.0

    def prompt(self, sample: Sample, frame_descriptions: Sequence[str] = ()) -> str:
        media = "video" if sample.kind == "video" else "image"
        extra = ""
        if frame_descriptions:  # videos: the paper adds per-second descriptions of the clip
            extra = "Per-second descriptions of the video: " + " | ".join(frame_descriptions) + ". "
        article = "an" if media == "image" else "a"
        return PAPER_STYLE_PROMPT.format(article=article, media=media, label=sample.label, extra=extra,
                                         n=self.n_questions)

    def build_request(self, sample: Sample, image_jpeg: bytes, frame_descriptions: Sequence[str] = (),
                      api_key: str = "<key>") -> tuple[str, dict, dict]:
        """(url, headers, JSON body) for one call; pure, so tests can check it without a network."""
        text = self.prompt(sample, frame_descriptions)
        b64 = base64.b64encode(image_jpeg).decode("ascii")
        if self.provider == "gemini":
            base = self.base_url or "https://generativelanguage.googleapis.com/v1beta"
            url = f"{base}/models/{self.model}:generateContent"
            body = {"contents": [{"parts": [{"text": text},
                                            {"inline_data": {"mime_type": "image/jpeg", "data": b64}}]}]}
            return url, {"Content-Type": "application/json", "x-goog-api-key": api_key}, body
        if self.provider == "openai":
            url = (self.base_url or "https://api.openai.com/v1").rstrip("/") + "/chat/completions"
            body = {"model": self.model, "messages": [{"role": "user", "content": [
                {"type": "text", "text": text},
                {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{b64}"}}]}]}
            return url, {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}, body
        raise ValueError(f"provider must be 'gemini' or 'openai', got {self.provider!r}")

    def _key(self) -> str:
        env = self.api_key_env or ("GEMINI_API_KEY" if self.provider == "gemini" else "OPENAI_API_KEY")
        key = os.environ.get(env)
        if not key:
            raise RuntimeError(f"LLM conversation generation is off: set {env} to enable it "
                               "(the offline generator needs no key)")
        return key

    def __call__(self, sample: Sample, image, frame_descriptions: Sequence[str] = ()) -> dict:
        """Call the API once (network!) and return a LLaVA record; `image` is an RGB uint8 array (a
        video's central frame)."""
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(image).convert("RGB").save(buf, format="JPEG", quality=90)
        url, headers, body = self.build_request(sample, buf.getvalue(), frame_descriptions, self._key())
        req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310 (user-configured URL)
            reply = json.loads(resp.read())
        if self.provider == "gemini":
            text = reply["candidates"][0]["content"]["parts"][0]["text"]
        else:
            text = reply["choices"][0]["message"]["content"]
        return record_from_llm_reply(sample, text)


def record_from_llm_reply(sample: Sample, text: str) -> dict:
    """Parse the model's JSON list of question/answer pairs (tolerating ```json fences) into a record."""
    match = re.search(r"\[.*\]", text, flags=re.DOTALL)
    if match is None:
        raise ValueError(f"sample {sample.id}: the LLM reply holds no JSON list: {text[:200]!r}")
    pairs = json.loads(match.group(0))
    media = "video" if sample.kind == "video" else "image"
    conv = []
    for i, pair in enumerate(pairs):
        q, a = str(pair["question"]).strip(), str(pair["answer"]).strip()
        conv.append({"from": "human", "value": f"{IMAGE_PLACEHOLDER}\n{q}" if i == 0 else q})
        conv.append({"from": "gpt", "value": a})
    if not conv:
        raise ValueError(f"sample {sample.id}: the LLM reply has no question/answer pairs")
    return {"id": f"{sample.id}-llm", media: str(sample.media), "conversations": conv,
            "label": sample.label, "task": "conversation"}

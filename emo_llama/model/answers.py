"""What the model says about one media item, together with what the pipeline saw: faces, frames, read errors.

`EmoLlama.generate` and `EmoLlama.answer` return `Answer`s. An `Answer` *is* the answer text (a `str`
subclass), so code that prints, parses or stores answers keeps working; it also carries:

- `answered`: False when the LLM was not asked (no face in any frame, or the media could not be read);
  then the text says so in words that name no emotion, so `parse_answer` reads no class from it;
- `face_found`, `frames`, `frames_without_face`: what MTCNN found, per item (a video counts its frames);
- `reason`: why there is no answer, or what to keep in mind about it ("" when nothing);
- `path`, `error`: the media path when known, and why it could not be read.
"""

from __future__ import annotations

NO_FACE_TEXT = "No answer: no face was found, so no facial expression can be read."
UNREADABLE_TEXT = "No answer: the media file could not be read."


class Answer(str):
    answered: bool
    face_found: bool
    frames: int
    frames_without_face: int
    reason: str
    path: str | None
    error: str | None

    def __new__(cls, text: str, *, answered: bool = True, face_found: bool = True, frames: int = 1,
                frames_without_face: int = 0, reason: str = "", path: str | None = None,
                error: str | None = None) -> Answer:
        obj = super().__new__(cls, text)
        obj.answered, obj.face_found, obj.frames = answered, face_found, frames
        obj.frames_without_face, obj.reason, obj.path, obj.error = frames_without_face, reason, path, error
        return obj

    @property
    def text(self) -> str:
        return str.__str__(self)

    def info(self) -> dict:
        """Everything but the text, JSON-ready."""
        return {"answered": self.answered, "face_found": self.face_found, "frames": self.frames,
                "frames_without_face": self.frames_without_face, "reason": self.reason, "path": self.path,
                "error": self.error}

    def as_dict(self) -> dict:
        return {"text": self.text} | self.info()

    def __reduce__(self):
        return _restore, (self.text, self.info())


def _restore(text: str, info: dict) -> Answer:
    return Answer(text, **info)


def unreadable(path, error: Exception | str) -> Answer:
    """The answer for media that could not be read: no frames, no face, the error names the path."""
    message = str(error)
    if str(path) not in message:
        message = f"{path}: {message}"
    return Answer(UNREADABLE_TEXT, answered=False, face_found=False, frames=0, reason="unreadable media",
                  path=str(path), error=message)


def face_summary(face_found, path: str | None = None) -> dict:
    """Answer fields from a media's per-frame face flags (a (T,) bool tensor or list)."""
    flags = [bool(f) for f in face_found]
    frames, missing = len(flags), flags.count(False)
    if missing == frames:
        where = "the image" if frames == 1 else f"any of the {frames} frames"
        reason = f"MTCNN found no face in {where}"
    elif missing:
        reason = f"{missing} of {frames} frames had no face (the centre of those frames was used)"
    else:
        reason = ""
    return {"face_found": missing < frames, "frames": frames, "frames_without_face": missing, "reason": reason,
            "path": path}

"""Synthetic speech for mini's clips: a real speech synthesiser (eSpeak NG) speaks a lexically neutral sentence
with the prosody of the clip's emotion, so that only the tone of voice carries the class.

    plan = draw_speech("anger", seed=0, identity="lfw_003", slot=(3, 100))   # sentence, voice, prosody
    utterance = synthesise(plan.text, plan.prosody, plan.voice)           # float32 mono, 16 kHz
    track = place_in_clip(utterance, seconds=5)                           # the clip's whole sound track
    describe_prosody(plan.prosody)                                        # "a high, wide-ranging, fast and loud voice, tense"

The engine: libespeak-ng and its voice data ship in the `espeakng-loader` wheel (no system package); this module
calls the library's C API through ctypes (`speak_lib.h`, and `espeak_ng.h` for the voice file and the noise seed).
eSpeak NG keeps synthesis state in static variables (the pitch-flutter phase, the cycle counter of its roughness
modulation, the gain control), so the same sentence said twice in one process comes out different (measured:
different lengths). Each utterance therefore gets a freshly loaded library: load, initialise, speak, terminate,
unload, which costs about 5 ms and makes the output depend on the inputs alone. (Were another part of the process
to hold libespeak-ng open as well, the unload would not reset it; nothing in emo_llama does.)

What carries the emotion (`PROSODY`, one row per mini class, directions from the vocal-emotion literature):
pitch level and range, speaking rate and loudness through espeak's parameters, and a voice quality through
the voice file (spectral tilt, breath noise, pitch flutter, roughness). The speaker's own voice (accent, male
or female variant) comes from the identity (`VOICES`), the sentence from `SENTENCES`, and each clip jitters its
class row a little (`JITTER`) from its own seeded stream.
"""

from __future__ import annotations

import atexit
import ctypes
import math
import os
import shutil
import tempfile
import threading
import zlib
from dataclasses import asdict, dataclass, replace
from functools import cache
from importlib import metadata
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000  # what emo_llama.features.audio reads (eGeMAPS, HuBERT)

# --- the prosody table -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prosody:
    """espeak's prosody parameters (espeak_SetParameter) and a voice quality (a key of `QUALITIES`)."""

    pitch: float    # espeakPITCH: base pitch, 0-100, 50 = the voice's own
    range: float    # espeakRANGE: pitch range, 0 = monotone, 50 = the voice's own
    rate: float     # espeakRATE: words per minute (espeak: 80-450, 175 normal)
    volume: float   # espeakVOLUME: 0-200, 100 = normal (above ~100 espeak's gain control starts to compress)
    quality: str = "modal"


# Directions per cue, from:
#   [BS] Banse & Scherer 1996, "Acoustic profiles in vocal emotion expression", JPSP 70(3) (hot anger, elation,
#        panic fear, sadness, disgust; their Table 6 of F0 mean, F0 range, energy, rate);
#   [JL] Juslin & Laukka 2003, "Communication of emotions in vocal expression and music performance", Psychol.
#        Bull. 129(5), the summary of cue patterns over 104 speech studies (their Table 11): anger, happiness,
#        fear fast, high-pitched; anger and happiness loud with much F0 variability; fear with *little* F0
#        variability, irregular voicing and little high-frequency energy; sadness slow, soft, low, narrow, with
#        little high-frequency energy; anger with much high-frequency energy;
#   [S03] Scherer 2003, "Vocal communication of emotion: a review of research paradigms", Speech Communication 40
#        (Table 3, the same directions for the emotions both review);
#   [MA] Murray & Arnott 1993, "Toward the simulation of emotion in synthetic speech", JASA 93(2) (Table I): the one
#        of these that lists disgust's voice ("very much slower", "very much lower" pitch, "lower" intensity,
#        "grumbled chest tone"); it gives fear a *wider* range, unlike [JL], whose meta-analysis we follow.
#   Surprise is in none of the tables above (it is not one of their emotions); its row follows the common reading
#        of surprised speech as high and widely ranging, moderately fast and loud, and is the least grounded row.
#   [GN] voice quality: Gobl & Ni Chasaide 2003, "The role of voice quality in communicating emotion, mood and attitude",
#        Speech Communication 40 (tense voice -> anger; whispery -> fear/timid; lax-creaky -> sadness/boredom);
#        [MA]'s "grumbled chest tone" for disgust.
# Magnitudes are chosen so that a class differs from neutral by several times the per-clip jitter; they are not
# measured effect sizes.
PROSODY: dict[str, Prosody] = {
    "neutral":   Prosody(pitch=50, range=50, rate=165, volume=70, quality="modal"),
    "happiness": Prosody(pitch=70, range=78, rate=190, volume=88, quality="modal"),
    "sadness":   Prosody(pitch=32, range=18, rate=128, volume=50, quality="lax"),
    "surprise":  Prosody(pitch=76, range=90, rate=180, volume=82, quality="modal"),
    "fear":      Prosody(pitch=78, range=32, rate=200, volume=66, quality="whispery"),
    "anger":     Prosody(pitch=64, range=82, rate=195, volume=105, quality="tense"),
    "disgust":   Prosody(pitch=34, range=50, rate=135, volume=60, quality="creaky"),
}

# Voice qualities, as lines of an eSpeak voice file (docs/voices.md of espeak-ng), appended after the speaker's
# own variant so that they override it, and their words for `describe_prosody`.
#   tone f1 a1 f2 a2 ...: the spectral envelope (default 600 170 1200 135 2000 110): a flatter one keeps more
#     high-frequency energy (a tense, pressed voice), a steeper one less (a lax voice);
#   breath: aspiration noise at the formants (breathy or whispery voice); flutter: slow pitch wavering (irregular
#     voicing); roughness 0-7: alternate glottal cycles weakened (a creaky, rough voice).
# anger tense (much high-frequency energy [JL], tense voice [GN]); sadness lax and breathy (little high-frequency
# energy [JL], lax [GN]); fear whispery and wavering, its noise kept to the low formants and its tilt steep (little
# high-frequency energy and irregular voicing [JL], whispery [GN]); disgust creaky ([MA]'s "grumbled chest tone");
# happiness, surprise and neutral modal. Tuned so that eGeMAPS sees these directions (benchmarks/mini_prosody.py).
QUALITIES: dict[str, tuple[tuple[str, ...], str]] = {
    "modal": ((), ""),
    "tense": (("tone 600 160 1200 165 2000 170",), "tense"),
    "lax": (("tone 600 200 1200 120 2000 60", "breath 20 20 15 10 5 5"), "lax and breathy"),
    "whispery": (("breath 40 40 20 8 0 0", "flutter 16", "tone 600 200 1200 110 2000 60"), "breathy and trembling"),
    "creaky": (("roughness 7", "flutter 8", "tone 600 185 1200 130 2000 95"), "creaky"),
}

# Per clip, the class row is jittered uniformly by at most these amounts (rate and volume as factors), from a
# stream of its own; the thresholds of `describe_prosody` lie outside the jitter, so a neutral clip reads "even".
JITTER = Prosody(pitch=6, range=8, rate=0.08, volume=0.10, quality="")
DESCRIBE_STEPS = Prosody(pitch=9, range=12, rate=0.10, volume=0.12, quality="")
VERY = 2.5  # steps from neutral beyond which a cue is "very" high, low, fast, ...

# --- speakers and sentences ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Voice:
    """A speaker: an English language voice of espeak-ng-data/lang and a voice variant of voices/!v."""

    accent: str    # file under espeak-ng-data/lang
    variant: str   # file under espeak-ng-data/voices/!v
    gender: str    # "female" | "male"

    @property
    def name(self) -> str:
        return f"{Path(self.accent).name}-{self.variant}".lower()


VOICES: tuple[Voice, ...] = (
    Voice("gmw/en-US", "m1", "male"),
    Voice("gmw/en", "m3", "male"),
    Voice("gmw/en-GB-x-rp", "m2", "male"),
    Voice("gmw/en-GB-scotland", "m7", "male"),
    Voice("gmw/en-US", "f1", "female"),
    Voice("gmw/en", "f2", "female"),
    Voice("gmw/en-GB-x-rp", "f3", "female"),
    Voice("gmw/en-US", "f4", "female"),
)

# The speaker's gender, where the source face's is known (data/README.md, "Source faces"); the LFW faces are
# unnamed here, so they draw from all voices.
KNOWN_GENDER = {"demo_sample": "female", "grace_hopper": "female", "carphone": "male"}

# Lexically neutral sentences, in the manner of the fixed sentences emotional-speech corpora use: no emotion word,
# nothing good or bad happens, plausible in any mood. Short, so that most clips hold the sentence two or more times.
SENTENCES: tuple[str, ...] = (
    "The box is on the table.",
    "The paper is in the drawer.",
    "The lamp is by the door.",
    "The car is in the garage.",
    "The key is on the left.",
    "The numbers are on the card.",
    "It will be ready at noon.",
    "The train leaves at nine.",
)

# --- drawing a clip's speech -------------------------------------------------------------------------------------

SPEECH_STREAM = 0x5EEC  # spawn key of the speech streams: never one of the pixel streams (build._rng)


@dataclass(frozen=True)
class SpeechPlan:
    text: str
    voice: Voice
    prosody: Prosody
    noise_seed: int  # seeds espeak's breath noise


def voice_for(identity: str, seed: int) -> Voice:
    """The identity's speaker, the same for all its clips of one build: a female or male voice where the source
    face's gender is known (`KNOWN_GENDER`), any voice otherwise."""
    gender = next((g for prefix, g in KNOWN_GENDER.items() if identity.startswith(prefix)), None)
    pool = [v for v in VOICES if gender in (None, v.gender)]
    rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(identity.encode())],
                                                       spawn_key=(SPEECH_STREAM, 0)))
    return pool[int(rng.integers(len(pool)))]


def draw_speech(label: str, seed: int, identity: str, slot: tuple[int, ...]) -> SpeechPlan:
    """The sentence and the jittered class prosody of one clip, from a stream keyed on (seed, slot): `slot` is the
    clip's place in the build (mini: identity index and video index), not its running number, so a build of one
    split draws each clip as the full build does. The stream is spawned apart from the pixel streams, so speech
    never changes a frame."""
    row = PROSODY[label]
    rng = np.random.default_rng(np.random.SeedSequence([seed, *slot], spawn_key=(SPEECH_STREAM, 1)))
    text = SENTENCES[int(rng.integers(len(SENTENCES)))]
    u = rng.uniform(-1.0, 1.0, 4)
    prosody = replace(row, pitch=round(row.pitch + JITTER.pitch * u[0]), range=round(row.range + JITTER.range * u[1]),
                      rate=round(row.rate * (1 + JITTER.rate * u[2])),
                      volume=round(row.volume * (1 + JITTER.volume * u[3])))  # whole numbers: what espeak takes
    return SpeechPlan(text, voice_for(identity, seed), prosody, int(rng.integers(2**31)))


def describe_prosody(p: Prosody, reference: Prosody = PROSODY["neutral"]) -> str:
    """Words for the prosody used, from its values relative to neutral's row (not from a class name):
    "a high, wide-ranging, fast and loud voice, tense"."""
    steps = DESCRIBE_STEPS
    words = [
        _word(p.pitch - reference.pitch, steps.pitch, "high", "low"),
        _word(p.range - reference.range, steps.range, "wide-ranging", "monotonous"),
        _word(p.rate / reference.rate - 1, steps.rate, "fast", "slow"),
        _word(p.volume / reference.volume - 1, steps.volume, "loud", "soft"),
    ]
    words = [w for w in words if w] or ["even"]
    listed = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    article = "an" if listed[0] in "aeiou" else "a"
    quality = QUALITIES[p.quality][1]
    return f"{article} {listed} voice" + (f", {quality}" if quality else "")


def _word(difference: float, step: float, up: str, down: str) -> str:
    """"very high" past VERY steps, "high" past one, "" within one step of neutral."""
    word = up if difference > 0 else down
    size = abs(difference) / step
    return f"very {word}" if size >= VERY else word if size >= 1 else ""


# --- the engine: libespeak-ng through ctypes ---------------------------------------------------------------------

# speak_lib.h (espeak-ng 1.52, API revision 13)
AUDIO_OUTPUT_SYNCHRONOUS = 2          # espeak_AUDIO_OUTPUT: retrieval through the callback, returns when done
INITIALIZE_DONT_EXIT = 0x8000         # espeak_Initialize option: report missing data instead of exit()ing Python
POS_CHARACTER = 1                     # espeak_POSITION_TYPE
ESPEAK_CHARS_UTF8 = 1                 # espeak_Synth flags
ESPEAK_RATE, ESPEAK_VOLUME, ESPEAK_PITCH, ESPEAK_RANGE = 1, 2, 3, 4   # espeak_PARAMETER
EE_OK = 0                             # espeak_ERROR; espeak_ng_STATUS ENS_OK is 0 too
# int (*t_espeak_callback)(short *wav, int numsamples, espeak_EVENT *events); returns 0 to go on
SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
OUTPUT_GAIN = 0.8  # headroom below espeak's full scale: resampling and AAC overshoot its loudest peaks a little
VOICE_PATH_MAX = 59  # espeak_ng_SetVoiceByFile copies the path into a 60-byte buffer and lower-cases it

_lock = threading.Lock()  # one utterance (and one voice file written) at a time: the library is process-global


def _paths() -> tuple[str, str]:
    """(libespeak-ng, espeak-ng-data) as the espeakng-loader wheel ships them."""
    import espeakng_loader

    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    c = ctypes
    lib.espeak_Initialize.argtypes = [c.c_int, c.c_int, c.c_char_p, c.c_int]
    lib.espeak_Initialize.restype = c.c_int
    lib.espeak_SetSynthCallback.argtypes = [SYNTH_CALLBACK]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_ng_SetVoiceByFile.argtypes = [c.c_char_p]
    lib.espeak_ng_SetVoiceByFile.restype = c.c_int
    lib.espeak_SetParameter.argtypes = [c.c_int, c.c_int, c.c_int]
    lib.espeak_SetParameter.restype = c.c_int
    lib.espeak_ng_SetRandSeed.argtypes = [c.c_long]
    lib.espeak_ng_SetRandSeed.restype = c.c_int
    lib.espeak_Synth.argtypes = [c.c_void_p, c.c_size_t, c.c_uint, c.c_int, c.c_uint, c.c_uint,
                                 c.POINTER(c.c_uint), c.c_void_p]
    lib.espeak_Synth.restype = c.c_int
    lib.espeak_Terminate.argtypes = []
    lib.espeak_Terminate.restype = c.c_int
    lib.espeak_Info.argtypes = [c.POINTER(c.c_char_p)]
    lib.espeak_Info.restype = c.c_char_p
    return lib


class _FreshEngine:
    """libespeak-ng loaded and initialised for one use, unloaded after it (module docstring: why)."""

    def __enter__(self):
        library, self.data = _paths()
        self.lib = _declare(ctypes.CDLL(library, mode=os.RTLD_LOCAL))
        self.rate = self.lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, self.data.encode(), INITIALIZE_DONT_EXIT)
        if self.rate <= 0:
            self._unload()
            raise RuntimeError(f"espeak_Initialize failed with the data in {self.data}")
        return self

    def __exit__(self, *exc):
        self.lib.espeak_Terminate()
        self._unload()

    def _unload(self):
        import _ctypes  # CPython's own: the unload that `ctypes.CDLL` does not offer

        handle = self.lib._handle
        del self.lib
        (getattr(_ctypes, "dlclose", None) or _ctypes.FreeLibrary)(handle)


def engine_version() -> str:
    """"eSpeak NG 1.52.0 (espeakng-loader 0.2.4)"."""
    with _lock, _FreshEngine() as engine:
        version = engine.lib.espeak_Info(None).decode()
    return f"eSpeak NG {version} (espeakng-loader {metadata.version('espeakng-loader')})"


@cache
def _voice_dir() -> Path:
    """A private folder of composed voice files (the speaker's accent and variant, then a quality), made once per
    process and removed at exit; short and lower case, as espeak_ng_SetVoiceByFile needs."""
    folder = Path(tempfile.mkdtemp(prefix="espeak_"))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def voice_file(voice: Voice, quality: str) -> Path:
    """The eSpeak voice file for `voice` speaking with `quality`: the language file, the variant file, the quality's
    lines, in that order (later lines override earlier ones)."""
    path = _voice_dir() / f"{voice.name}-{quality}"
    if len(str(path)) > VOICE_PATH_MAX or str(path) != str(path).lower():
        raise RuntimeError(f"{path}: espeak-ng needs a voice file path of at most {VOICE_PATH_MAX} lower-case "
                           "characters; set TMPDIR to a short lower-case folder (e.g. /tmp)")
    if not path.exists():
        _, data = _paths()
        parts = [(Path(data) / "lang" / voice.accent).read_text(),
                 (Path(data) / "voices" / "!v" / voice.variant).read_text(), *QUALITIES[quality][0]]
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("\n".join(parts) + "\n")
        os.replace(tmp, path)
    return path


def synthesise(text: str, prosody: Prosody, voice: Voice = VOICES[0], noise_seed: int = 0) -> np.ndarray:
    """`text` spoken by `voice` with `prosody`: float32 mono in [-1, 1] at 16 kHz, leading and trailing silence
    trimmed. The same arguments give the same samples (`noise_seed` seeds the breath noise)."""
    from scipy.signal import resample_poly

    chunks: list[np.ndarray] = []

    def collect(wav, count, events):
        if count > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    callback = SYNTH_CALLBACK(collect)  # kept referenced until synthesis ends
    encoded = text.encode("utf-8") + b"\0"
    with _lock, _FreshEngine() as engine:
        path = voice_file(voice, prosody.quality)
        lib = engine.lib
        lib.espeak_SetSynthCallback(callback)
        if lib.espeak_ng_SetVoiceByFile(str(path).encode()) != EE_OK:
            raise RuntimeError(f"espeak-ng could not load the voice file {path}")
        for parameter, value in ((ESPEAK_RATE, prosody.rate), (ESPEAK_VOLUME, prosody.volume),
                                 (ESPEAK_PITCH, prosody.pitch), (ESPEAK_RANGE, prosody.range)):
            if lib.espeak_SetParameter(parameter, int(round(value)), 0) != EE_OK:
                raise ValueError(f"espeak rejected parameter {parameter} = {value}")
        lib.espeak_ng_SetRandSeed(noise_seed)
        status = lib.espeak_Synth(encoded, len(encoded), 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8, None, None)
        if status != EE_OK:
            raise RuntimeError(f"espeak_Synth failed ({status}) on {text!r}")
        rate = engine.rate
    samples = np.concatenate(chunks) * (OUTPUT_GAIN / 32768) if chunks else np.zeros(0)
    samples = _trim(samples, rate)
    g = math.gcd(SAMPLE_RATE, rate)
    return np.clip(resample_poly(samples, SAMPLE_RATE // g, rate // g), -1.0, 1.0).astype(np.float32)


def _trim(samples: np.ndarray, rate: int, floor: float = 1e-3, pad_s: float = 0.02) -> np.ndarray:
    """Without the silence around the speech (a little margin kept)."""
    loud = np.flatnonzero(np.abs(samples) > floor)
    if loud.size == 0:
        return samples[:0]
    pad = int(pad_s * rate)
    return samples[max(0, loud[0] - pad):loud[-1] + pad + 1]


# --- a clip's sound track ----------------------------------------------------------------------------------------

LEAD_S = 0.1      # silence before the first word and after the last
MIN_GAP_S = 0.25  # the shortest pause between two sayings of the sentence


def place_in_clip(utterance: np.ndarray, seconds: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A track exactly `seconds` long holding the utterance as many whole times as fit, spread from LEAD_S after the
    start to LEAD_S before the end with even pauses, so that the speech spans the clip; a single saying (a slow
    sentence in a short clip) is centred. Never longer than the clip: an utterance that does not fit raises."""
    total = int(round(seconds * sample_rate))
    lead, min_gap, length = int(LEAD_S * sample_rate), int(MIN_GAP_S * sample_rate), len(utterance)
    room = total - 2 * lead
    if length > room:
        raise ValueError(f"an utterance of {length / sample_rate:.2f} s does not fit a {seconds} s clip")
    repeats = 1 + (room - length) // (length + min_gap)
    if repeats == 1:
        starts = [(total - length) // 2]
    else:
        gap = (room - repeats * length) / (repeats - 1)
        starts = [lead + round(i * (length + gap)) for i in range(repeats)]
    track = np.zeros(total, np.float32)
    for start in starts:
        track[start:start + length] = utterance
    return track


def speech_settings() -> dict:
    """What BUILD_INFO records about mini's speech."""
    return {"engine": engine_version(), "sample_rate": SAMPLE_RATE,
            "prosody": {label: asdict(row) for label, row in PROSODY.items()},
            "qualities": {name: list(lines) for name, (lines, _) in QUALITIES.items()},
            "jitter": {"pitch": f"+- {JITTER.pitch}", "range": f"+- {JITTER.range}",
                       "rate": f"x(1 +- {JITTER.rate})", "volume": f"x(1 +- {JITTER.volume})"},
            "voices": [f"{v.accent}+{v.variant} ({v.gender})" for v in VOICES],
            "sentences": list(SENTENCES)}

"""Speech rendered from the phone view, with exact per-phone durations.

Both backends get espeak-ng phoneme input (``[[...]]``) built from the row's ARPAbet phones, so the
synthesiser never re-derives phones from text:
- ``mbrola`` (exact): espeak-ng writes a .pho (phone, ms, pitch points), whose pitch targets are rescaled
  by ``pitch_range``; ``mbrola -e`` renders exactly those durations at 16 kHz.
- ``espeak``: espeak-ng's own voices (libespeak-ng); phone start times come from its phoneme events.
libespeak-ng's waveform generator keeps state across utterances (e.g. a static pitch-flutter index), so
the same input sounds slightly different on each call. It therefore runs in helper processes: one per
MBROLA voice writes .pho text (that path is stateless; keeping the voice loaded saves a ~15 ms mbrola
restart per voice switch), and one forks a fresh child per espeak utterance (same state every time).
The synthesiser's phones are aligned to the input (it may flap, split or insert, e.g. a linking r), and
what is not one-to-one is counted in ``mismatches``.
"""

from __future__ import annotations

import atexit
import ctypes.util
import functools
import inspect
import math
import os
import pickle
import shutil
import struct
import subprocess
import sys
import textwrap
import threading
from dataclasses import dataclass

import numpy as np

from modevo.errors import MissingToolError, ModevoError
from modevo.frames import frame_index

SAMPLE_RATE = 16000

# ARPAbet (no stress digit) -> espeak-ng English mnemonic. AH, ER and IY have reduced forms when unstressed.
_ARPABET_TO_ESPEAK = {
    "AA": "A:", "AE": "a", "AH": "V", "AO": "O:", "AW": "aU", "AY": "aI", "EH": "E", "ER": "3:",
    "EY": "eI", "IH": "I", "IY": "i:", "OW": "oU", "OY": "OI", "UH": "U", "UW": "u:",
    "B": "b", "CH": "tS", "D": "d", "DH": "D", "F": "f", "G": "g", "HH": "h", "JH": "dZ", "K": "k",
    "L": "l", "M": "m", "N": "n", "NG": "N", "P": "p", "R": "r", "S": "s", "SH": "S", "T": "t",
    "TH": "T", "V": "v", "W": "w", "Y": "j", "Z": "z", "ZH": "Z",
}
_UNSTRESSED = {"AH": "@", "ER": "3", "IY": "i"}
_VOWELS = frozenset(p for p in _ARPABET_TO_ESPEAK if p[0] in "AEIOU")

# What the synthesisers may emit for each input phone: MBROLA names (us_phtrans, en1_phtrans) and espeak
# mnemonics, collected over novel sentences. Allophones count as one-to-one (flap 4, aspirated k_h, dark l 5,
# n -> N before velars, schwa -> r= before r). "a+b" is a split whose second part continues the same sound:
# ER's r-colour surfacing as r before a vowel, the y-glide (;) after i-final vowels. Anything else (an
# intrusive r after a non-rhotic vowel, a dropped or unrelated phone) is a mismatch.
_REALISED = {
    "AA": "A A: 0 Q", "AE": "{ a", "AH": "V @ a# r= 3", "AO": "O O: 0", "AW": "aU", "AY": "AI aI aI+;",
    "EH": "E e", "EY": "EI eI eI+;", "IH": "I", "IY": "i i: I i+; i:+;", "OW": "@U oU", "OY": "OI OI+;",
    "UH": "U", "UW": "u u:", "ER": "r= 3: 3 @ a# r=+r 3+r- 3:+r- 3:+r @+r a#+r-",
    "B": "b", "CH": "tS", "D": "d 4", "DH": "D", "F": "f", "G": "g", "HH": "h", "JH": "dZ", "K": "k k_h",
    "L": "l 5 l/", "M": "m", "N": "n N", "NG": "N", "P": "p p_h", "R": "r", "S": "s", "SH": "S",
    "T": "t t_h 4 t#", "TH": "T", "V": "v", "W": "w", "Y": "j", "Z": "z", "ZH": "Z",
}
_REALISED = {k: frozenset(v.split()) for k, v in _REALISED.items()}


@dataclass(frozen=True)
class Voice:
    name: str
    backend: str      # "mbrola" | "espeak"
    espeak_id: str    # espeak-ng voice: "mb-us1", "en-us+f3"
    database: str     # MBROLA diphone database ("" for espeak voices)
    description: str


_MBROLA_DIR = "/usr/share/mbrola"
VOICES: dict[str, Voice] = {
    v.name: v for v in [
        Voice("us1", "mbrola", "mb-us1", f"{_MBROLA_DIR}/us1/us1", "US English female (MBROLA)"),
        Voice("us2", "mbrola", "mb-us2", f"{_MBROLA_DIR}/us2/us2", "US English male (MBROLA)"),
        Voice("us3", "mbrola", "mb-us3", f"{_MBROLA_DIR}/us3/us3", "US English male (MBROLA)"),
        Voice("en1", "mbrola", "mb-en1", f"{_MBROLA_DIR}/en1/en1", "British English male (MBROLA)"),
    ] + [
        Voice(f"espeak-{i}", "espeak", i, "", d) for i, d in [
            ("en-us", "US English, default male"), ("en-us+f3", "US English, female 3"),
            ("en-us+m3", "US English, male 3"), ("en-us+m7", "US English, male 7"),
            ("en-gb-x-rp+m3", "British RP, male 3"), ("en+f2", "British English, female 2"),
        ]
    ]
}

# max |sum(all durations incl. pauses) - len(audio)/16| in ms, per backend.
TOLERANCE_MS = {
    # mbrola drops the last fraction of a pitch period at the very end (measured 0-8 ms short, never
    # long); the audio is padded/trimmed at the end (inside the final pause) to the .pho total: exact.
    "mbrola": 0.0,
    # espeak durations are exact at its 22.05 kHz; resampling to 16 kHz rounds the length to a sample.
    "espeak": 1000.0 / SAMPLE_RATE,
}
_MBROLA_MAX_SLACK_MS = 20.0  # a larger gap is not the end effect above but a broken render: refuse it


@functools.lru_cache(maxsize=None)
def _libespeak() -> str | None:
    return ctypes.util.find_library("espeak-ng")


def _missing(backend: str) -> str | None:
    """One line naming what is missing for backend, or None."""
    if backend not in TOLERANCE_MS:
        raise ModevoError(f"unknown synthesis backend {backend!r}: expected one of {sorted(TOLERANCE_MS)}")
    if shutil.which("espeak-ng") is None:
        return "espeak-ng not found on PATH: run `make setup` (or apt-get install espeak-ng)"
    if _libespeak() is None:
        return "libespeak-ng not found: run `make setup` (or apt-get install libespeak-ng1)"
    if backend == "mbrola":
        hint = "run `make setup` (it installs mbrola and its voices from Debian contrib/non-free)"
        if shutil.which("mbrola") is None:
            return f"mbrola not found on PATH: {hint}"
        absent = [v.database for v in VOICES.values() if v.database and not os.path.isfile(v.database)]
        if absent:
            return f"MBROLA voices not installed ({', '.join(absent)} missing): {hint}"
    return None


def backend_available(backend: str) -> bool:
    return _missing(backend) is None


def require_backend(backend: str) -> None:
    problem = _missing(backend)
    if problem:
        raise MissingToolError(problem)


@dataclass(frozen=True)
class RenderParams:
    voice: str = "us1"
    rate_wpm: int = 160        # espeak-ng -s
    pitch: int = 50            # espeak-ng -p (0-99)
    pitch_range: float = 1.0   # scale of pitch targets around the utterance mean (1.0 = unchanged)


@dataclass
class Rendering:
    audio: np.ndarray          # int16 mono, SAMPLE_RATE
    durations_ms: np.ndarray   # float64, one per input phone (flattened over words)
    word_pause_ms: np.ndarray  # float64, one per input word: silence after that word
    leading_ms: float
    trailing_ms: float
    mismatches: int            # input phones not mapped one-to-one onto the synthesiser's phones
    backend: str


def frames_50hz(durations_ms: np.ndarray, start_ms: float = 0.0) -> np.ndarray:
    """Frames per phone: cumulative boundaries rounded (half up) to the 20 ms grid, so the frames sum to the
    rounded total and no rounding error accumulates; a short phone can get 0 frames."""
    d = np.asarray(durations_ms, dtype=np.float64)
    if np.any(d < 0):
        raise ModevoError("frames_50hz: negative duration")
    bounds = start_ms + np.concatenate([[0.0], np.cumsum(d)])
    return np.diff(frame_index(bounds))


def _check(phones: list[list[str]], stress: list[list[int]], params: RenderParams) -> Voice:
    voice = VOICES.get(params.voice)
    if voice is None:
        raise ModevoError(f"unknown voice {params.voice!r}: choose one of {', '.join(VOICES)}")
    # espeak's own pitch range parameter stops at 99 (= 1.98 x its default 50)
    top = 3.0 if voice.backend == "mbrola" else 1.98
    for name, lo, hi in (("pitch", 0, 99), ("rate_wpm", 80, 450), ("pitch_range", 0, top)):
        value, whole = getattr(params, name), name != "pitch_range"
        if not (lo <= value <= hi and (float(value).is_integer() or not whole)):
            what = "(whole numbers)" if whole else f"for {voice.backend} voices"
            raise ModevoError(f"{name} {value} out of range {lo}-{hi} {what}")
    if not phones or len(phones) != len(stress):
        raise ModevoError(f"need one stress list per word: {len(phones)} words, {len(stress)} stress lists")
    for word, marks in zip(phones, stress):
        if not word or len(word) != len(marks):
            raise ModevoError(f"word {word} has {len(marks)} stress marks: needs one per phone, and a phone")
        for p, s in zip(word, marks):
            if p not in _ARPABET_TO_ESPEAK:
                raise ModevoError(f"unknown phone {p!r} in {word}: expected ARPAbet without stress digits")
            if (p in _VOWELS and s not in (0, 1, 2)) or (p not in _VOWELS and s != -1):
                raise ModevoError(f"bad stress {s} for phone {p} in {word}: vowels take 0/1/2, consonants -1")
    return voice


def _espeak_phonemes(phones: list[list[str]], stress: list[list[int]]) -> str:
    """espeak-ng phoneme input; '|' keeps adjacent mnemonics apart (t|S is not tS, I|@ is not I@)."""
    words = []
    for word, marks in zip(phones, stress):
        out = []
        for p, s in zip(word, marks):
            mnem = _UNSTRESSED[p] if s == 0 and p in _UNSTRESSED else _ARPABET_TO_ESPEAK[p]
            out.append({1: "'", 2: ","}.get(s, "") + mnem)  # stress mark goes right before the vowel
        words.append("|".join(out))
    return "[[" + " ".join(words) + "]]"


def _helper_main(lib_path: str, mode: str, voice: str) -> None:
    """Runs in a helper process (stdlib only): reads length-prefixed pickled requests on stdin and writes
    pickled replies on stdout. mode "pho": .pho text for one MBROLA voice, kept loaded. mode "wav": a fresh
    fork per request, so libespeak-ng's hidden state never carries from one utterance to the next."""
    import ctypes, os, pickle, struct, sys  # noqa: E401 (runs on its own, before anything else is imported)

    class Event(ctypes.Structure):  # espeak_EVENT
        _fields_ = [("type", ctypes.c_int), ("uid", ctypes.c_uint), ("text_position", ctypes.c_int),
                    ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                    ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]

    lib, libc = ctypes.CDLL(lib_path), ctypes.CDLL(None)
    lib.espeak_SetPhonemeTrace.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.open_memstream.restype = ctypes.c_void_p
    libc.fclose.argtypes = libc.free.argtypes = [ctypes.c_void_p]
    rate = lib.espeak_Initialize(2, 0, None, 1 if mode == "wav" else 0)  # synchronous (+phoneme events)
    audio, events = bytearray(), []

    @ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(Event))
    def callback(wav, n, ev):
        if n > 0:
            audio.extend(ctypes.string_at(wav, 2 * n))
        i = 0
        while ev and ev[i].type != 0:
            if ev[i].type == 7:  # phoneme
                events.append((ev[i].sample, ev[i].id.decode("ascii", "replace")))
            i += 1
        return 0

    lib.espeak_SetSynthCallback(callback)
    loaded = lib.espeak_SetVoiceByName(voice.encode()) if mode == "pho" else 0

    def reply(obj) -> None:
        data = pickle.dumps(obj)
        out.write(struct.pack("<Q", len(data)) + data)
        out.flush()

    def synth(req) -> dict:
        if mode == "wav" and lib.espeak_SetVoiceByName(req["voice"].encode()) != 0:
            return {"error": f"espeak-ng has no voice {req['voice']!r}"}
        if loaded != 0:
            return {"error": f"espeak-ng cannot load voice {voice!r} (is its MBROLA database installed?)"}
        for param, value in ((1, req["rate"]), (3, req["pitch"]), (4, req["range"])):
            lib.espeak_SetParameter(param, value, 0)
        text = req["text"].encode()
        if mode == "wav":
            lib.espeak_Synth(text, len(text) + 1, 0, 0, 0, 0x1100, None, None)  # PHONEMES | ENDPAUSE
            return {"rate": rate, "audio": bytes(audio), "events": events}
        buf, size = ctypes.c_void_p(), ctypes.c_size_t()
        stream = libc.open_memstream(ctypes.byref(buf), ctypes.byref(size))
        lib.espeak_SetPhonemeTrace(0x10, stream)  # write .pho instead of feeding mbrola
        lib.espeak_Synth(text, len(text) + 1, 0, 0, 0, 0x1100, None, None)
        lib.espeak_SetPhonemeTrace(0, None)
        libc.fclose(stream)
        pho = ctypes.string_at(buf, size.value).decode("ascii", "replace")
        libc.free(buf)
        return {"pho": pho}

    inp, out = sys.stdin.buffer, sys.stdout.buffer
    while len(head := inp.read(8)) == 8:
        req = pickle.loads(inp.read(struct.unpack("<Q", head)[0]))
        pid = os.fork() if mode == "wav" else 0
        if pid:
            if os.waitpid(pid, 0)[1] != 0:  # died inside the C library before replying
                reply({"error": "espeak-ng crashed"})
            continue
        try:
            answer = synth(req)
        except Exception as exc:  # a reply must always come back: the client blocks on it
            answer = {"error": f"espeak-ng helper failed: {exc!r}"}
        try:
            reply(answer)
        finally:
            if mode == "wav":
                os._exit(0)


_HELPER_SRC = f"import sys\n{textwrap.dedent(inspect.getsource(_helper_main))}\n_helper_main(*sys.argv[1:])\n"
_helpers: dict[str, subprocess.Popen] = {}
_helpers_pid = os.getpid()
_lock = threading.Lock()


def _close_helpers() -> None:
    for proc in _helpers.values():
        for pipe in (proc.stdin, proc.stdout):
            pipe.close()  # the helper exits on EOF
    _helpers.clear()


atexit.register(_close_helpers)


def _ask(mode: str, voice: str, req: dict) -> dict:
    global _helpers_pid
    key = f"{mode}:{voice}"
    with _lock:
        if _helpers_pid != os.getpid():  # forked: the parent's helpers are not ours to talk to
            _close_helpers()
            _helpers_pid = os.getpid()
        proc = _helpers.get(key)
        if proc is None or proc.poll() is not None:
            cmd = [sys.executable, "-I", "-S", "-c", _HELPER_SRC, _libespeak() or "", mode, voice]
            proc = _helpers[key] = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        data = pickle.dumps(req)
        try:
            proc.stdin.write(struct.pack("<Q", len(data)) + data)
            proc.stdin.flush()
            head = proc.stdout.read(8)
            out = pickle.loads(proc.stdout.read(struct.unpack("<Q", head)[0]))
        except (OSError, struct.error, EOFError, pickle.UnpicklingError) as exc:
            proc.kill()
            raise ModevoError(f"espeak-ng helper process failed ({exc!r})") from None
    if "error" in out:
        raise ModevoError(out["error"])
    return out


def _rescale_pitch(lines: list[list[str]], scale: float) -> None:
    """Scale .pho pitch targets around their geometric mean, in place (log domain: stays positive)."""
    hz = [float(f) for f in (x for row in lines for x in row[3::2])]
    if scale == 1.0 or not hz:
        return
    centre = float(np.mean(np.log(hz)))
    for row in lines:
        row[3::2] = [f"{math.exp(centre + scale * (math.log(float(f)) - centre)):.1f}" for f in row[3::2]]


def _mbrola_audio(pho: str, database: str) -> np.ndarray:
    proc = subprocess.run(["mbrola", "-e", database, "-", "-.raw"], input=pho.encode(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise ModevoError(f"mbrola failed on {database}: {msg[-1] if msg else proc.returncode}")
    return np.frombuffer(proc.stdout, dtype="<i2").astype(np.int16)


def _render_mbrola(text: str, voice: Voice, params: RenderParams) -> tuple[np.ndarray, list]:
    req = {"text": text, "rate": int(params.rate_wpm), "pitch": int(params.pitch), "range": 50}
    out = _ask("pho", voice.espeak_id, req)
    lines = [ln.split() for ln in out["pho"].splitlines() if ln.strip() and not ln.startswith(";")]
    _rescale_pitch(lines, params.pitch_range)
    audio = _mbrola_audio("\n".join(" ".join(row) for row in lines) + "\n", voice.database)
    segments = [(row[0], float(row[1])) for row in lines]
    # mbrola ends a few ms short (see TOLERANCE_MS): fit the audio to the .pho total at its silent end
    target = round(sum(d for _, d in segments) * SAMPLE_RATE / 1000)
    if abs(len(audio) - target) > _MBROLA_MAX_SLACK_MS * SAMPLE_RATE / 1000 or segments[-1][0] != "_":
        raise ModevoError(f"mbrola rendered {len(audio)} samples for a {target}-sample .pho ({voice.name})")
    audio = np.concatenate([audio[:target], np.zeros(max(0, target - len(audio)), np.int16)])
    return audio, segments


def _resample(x: np.ndarray, rate: int) -> np.ndarray:
    """Deterministic FFT resampling to SAMPLE_RATE; zero-padded to whole blocks so times map exactly."""
    if rate == SAMPLE_RATE:
        return x.astype(np.int16)
    g = math.gcd(rate, SAMPLE_RATE)
    up, down = SAMPLE_RATE // g, rate // g
    blocks = -(-len(x) // down)
    spec = np.fft.rfft(x.astype(np.float64), n=blocks * down)
    n_bins = blocks * up // 2 + 1
    # raised-cosine roll-off over the top 10% of the narrower band instead of a brick wall (less ringing)
    f = np.arange(n_bins) / (min(n_bins, len(spec)) - 1)
    spec = np.concatenate([spec[:n_bins], np.zeros(max(0, n_bins - len(spec)), complex)])
    spec *= 0.5 * (1 + np.cos(np.pi * np.clip((f - 0.9) / 0.1, 0.0, 1.0)))
    y = np.fft.irfft(spec, n=blocks * up) * (up / down)
    n_out = (len(x) * up + down // 2) // down
    return np.clip(np.rint(y[:n_out]), -32768, 32767).astype(np.int16)


def _render_espeak(text: str, voice: Voice, params: RenderParams) -> tuple[np.ndarray, list]:
    out = _ask("wav", "", {"text": text, "voice": voice.espeak_id, "rate": int(params.rate_wpm),
                           "pitch": int(params.pitch), "range": int(round(50 * float(params.pitch_range)))})
    rate, raw = out["rate"], np.frombuffer(out["audio"], dtype=np.int16)
    starts = [s for s, _ in out["events"]] + [len(raw)]
    # segments tile the audio: the part before the first phone event is a leading pause
    segments = [("_", starts[0] * 1000.0 / rate)] + [
        (name, (starts[i + 1] - s) * 1000.0 / rate) for i, (s, name) in enumerate(out["events"])]
    return _resample(raw, rate), segments


def _align(expected: list[str], produced: list[str]) -> tuple[list[int], set[int]]:
    """Owner input index for every produced phone, and the input phones that are not one-to-one.
    Edit distance: 0 for a known realisation (one phone, or a known split into two), 1 for a substitution,
    an insertion or a deletion."""
    n, m = len(expected), len(produced)
    owner: list[int] = []
    for i, p in enumerate(expected):  # fast path: a clean left-to-right walk (cost 0 is optimal)
        j = len(owner)
        if j + 1 < m and f"{produced[j]}+{produced[j + 1]}" in _REALISED[p]:
            owner += [i, i]
        elif j < m and produced[j] in _REALISED[p]:
            owner.append(i)
        else:
            break
    else:
        if len(owner) == m:
            return owner, set()

    def sub(i: int, j: int) -> int:  # cost of expected[i-1] -> produced[j-1]
        return 0 if produced[j - 1] in _REALISED[expected[i - 1]] else 1

    def split(i: int, j: int) -> bool:  # expected[i-1] -> produced[j-2], produced[j-1]
        return j >= 2 and f"{produced[j - 2]}+{produced[j - 1]}" in _REALISED[expected[i - 1]]

    inf = n + m + 1
    cost = [[i + j if i == 0 or j == 0 else inf for j in range(m + 1)] for i in range(n + 1)]
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i][j] = min(cost[i - 1][j - 1] + sub(i, j), cost[i - 1][j] + 1, cost[i][j - 1] + 1,
                             cost[i - 1][j - 2] if split(i, j) else inf)
    owner, bad, i, j = [0] * m, set(), n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and split(i, j) and cost[i][j] == cost[i - 1][j - 2]:
            owner[j - 1] = owner[j - 2] = i - 1
            i, j = i - 1, j - 2
        elif i > 0 and j > 0 and cost[i][j] == cost[i - 1][j - 1] + sub(i, j):
            owner[j - 1] = i - 1
            if sub(i, j):
                bad.add(i - 1)
            i, j = i - 1, j - 1
        elif j > 0 and (i == 0 or cost[i][j] == cost[i][j - 1] + 1):  # inserted: joins the phone before
            owner[j - 1] = max(i - 1, 0)
            bad.add(max(i - 1, 0))
            j -= 1
        else:  # deleted input phone: 0 ms
            bad.add(i - 1)
            i -= 1
    return owner, bad


def render(phones: list[list[str]], stress: list[list[int]], params: RenderParams) -> Rendering:
    """Render the phones with params.voice; durations per input phone, pauses per word."""
    voice = _check(phones, stress, params)
    require_backend(voice.backend)
    text = _espeak_phonemes(phones, stress)
    engine = _render_mbrola if voice.backend == "mbrola" else _render_espeak
    audio, segments = engine(text, voice, params)

    flat = [p for word in phones for p in word]
    word_of = [w for w, word in enumerate(phones) for _ in word]
    sounds = [(k, name) for k, (name, _) in enumerate(segments) if not name.startswith("_")]
    owner, bad = _align(flat, [name for _, name in sounds])
    owner_of_seg = {k: owner[j] for j, (k, _) in enumerate(sounds)}

    durations, pauses = np.zeros(len(flat)), np.zeros(len(phones))
    leading = trailing = 0.0
    prev = None  # input phone owning the last sound so far
    for k, (name, ms) in enumerate(segments):
        if k in owner_of_seg:
            prev = owner_of_seg[k]
            durations[prev] += ms
            continue
        after = next((owner_of_seg[j] for j in range(k + 1, len(segments)) if j in owner_of_seg), None)
        if prev is None:
            leading += ms
        elif after is None:
            trailing += ms
        elif word_of[after] != word_of[prev]:
            pauses[word_of[prev]] += ms
        else:  # a pause inside a word: it stays with the phone before it, which is then not one-to-one
            durations[prev] += ms
            bad.add(prev)
    return Rendering(audio=audio, durations_ms=durations, word_pause_ms=pauses, leading_ms=leading,
                     trailing_ms=trailing, mismatches=len(bad), backend=voice.backend)

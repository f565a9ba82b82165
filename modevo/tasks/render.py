"""Task items → one view's token ids, through the SAME corpus, units and views code as the training data.

A written item goes through the corpus stage's `sentence_row` (normalisation, cmudict/g2p phones), then the
view's own `Encoder`. Frame-level views also need speech: the item is synthesised by the corpus stage's
`render_utterance` with parameters drawn for the PAIR (both members, and any context, share one voice,
rate and pitch), and speech views encode that audio with the run's trained unit tokenizer.

A released benchmark (TaskSet.audio == "released": sLM21 wavs, spoken StoryCloze) is not synthesised for
speech views: they encode the released file itself (modevo.tasks.audio: mono, 16 kHz), in the test
condition "released"; text, phone and phone-repeat views render its transcript or phones as usual.

An item one view cannot render (nothing speakable, no phones, no transcript, an audio file missing or
unreadable, longer than the model's context) is counted under its reason; comparisons across views use the
items both can render.

Rendered items are cached beside the corpus: <corpus>/tasks/<task>-<encoding>-<rendering>-<key>/items.npz,
keyed by what the ids depend on (the encoder's `item_inputs`), not by the view: speech@fixed and
speech@varied of one unit tokenizer render the test grid once between them.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modevo.cache import atomic_dir, file_digest, read_json, stable_hash, verify_files
from modevo.config import to_dict
from modevo.corpus.build import sentence_row
from modevo.corpus.phones import split_stress
from modevo.corpus.render import render_utterance, resolve_voices, utterance_params
from modevo.errors import InputError
from modevo.tasks.base import Pair, TaskSet
from modevo.views.build import ViewContext, ViewsStageConfig, encoder_and_inputs
from modevo.views.config import keyed
from modevo.views.registry import SEP_ID, ViewSpec, parse_view

log = logging.getLogger("modevo.tasks")

STAGE_VERSION = "tasks-render-4"
RELEASED = "released"  # the test condition of a released benchmark's own audio


@dataclass
class RenderedTask:
    """One task in one view (and test rendering): ids per pair, or the reason it could not be rendered.

    `correct[i]`, `incorrect[i]`: the continuation's ids; `context[i]`: the ids before it (empty for tasks
    without context), utterances separated by SEP as in training. `skipped[i]` is "" or a reason."""

    task: TaskSet
    view: str
    rendering: str | None
    correct: list[np.ndarray]
    incorrect: list[np.ndarray]
    context: list[np.ndarray]
    skipped: list[str]
    in_vocab: np.ndarray  # (n,) bool: every word of the pair (and context) occurs in the training split
    key: str
    context_dropped: np.ndarray | None = None  # (n,) context tokens cut to fit the model's window
    audio: str = "synthesised"  # where speech came from: released (the task's files) | synthesised | none
    audio_notes: dict | None = None  # what reading released audio changed (resampled, mixed down), counted
    speakers: dict | None = None  # a task speaker (a ZeroSpeech gold voice) → the modevo voice that stood in

    @property
    def rendered(self) -> np.ndarray:
        return np.asarray([s == "" for s in self.skipped])

    def skip_counts(self) -> dict[str, int]:
        return dict(Counter(s for s in self.skipped if s))


class ItemRenderer:
    """Renders task items into one view of one corpus; build it from the run's resolved stage config."""

    def __init__(self, stage: ViewsStageConfig, view: str, max_len: int | None = None, progress: bool = True):
        self.stage, self.progress, self.max_len = stage, progress, max_len
        self.spec: ViewSpec = parse_view(view, stage.views.tokenizer)
        self.ctx = ViewContext(stage, progress)
        self.encoder, self.inputs, _ = encoder_and_inputs(self.spec, self.ctx)
        # items are single words or long sentences: the corpus's length filters are for training text
        self.corpus_cfg = copy.deepcopy(stage.corpus)
        self.corpus_cfg.text = dataclasses.replace(self.corpus_cfg.text, min_words=1, max_words=10_000,
                                                   max_chars=100_000)
        self.train_words = frozenset(w for r in self.ctx.train_rows() for w in r["words"])
        self._unit_tokenizer = None
        self._audio_ids: dict[str, np.ndarray] = {}  # a released file serves several pairs: encoded once
        self._audio_notes: Counter = Counter()

    @property
    def hears_audio(self) -> bool:
        """Whether this view's tokens come from audio (units), so a released benchmark's files are its items."""
        return self.spec.view_family.reads_units

    @staticmethod
    def audio_source(rendering: str | None) -> str:
        """Where a test rendering's speech comes from: released | synthesised | none (text and phone views)."""
        if rendering == RELEASED:
            return "released"
        return "synthesised" if rendering is not None else "none"

    # -- which speech each item gets ------------------------------------------------------------------------
    def test_renderings(self, task: TaskSet | None = None) -> list[str | None]:
        """The renderings items are tested in: the view's own first (its headline), then for speech views
        the rest of the fixed / varied / held-out-voice grid. Text and phone views need none. A speech view
        tests a released benchmark on its own audio only ("released")."""
        if task is not None and task.audio == "released" and self.hears_audio:
            return [RELEASED]
        return self.spec.view_family.test_renderings(self.spec, list(self.stage.corpus.speech.renderings))

    def _params(self, rendering: str, item_id: str):
        speech = self.stage.corpus.speech
        rcfg = speech.renderings[rendering]
        voices, _ = resolve_voices(rcfg, speech.allow_fallback)
        return utterance_params(rendering, rcfg, voices, item_id, speech.seed)

    def unit_tokenizer(self):
        if self._unit_tokenizer is None:
            from modevo.units.registry import load_tokenizer

            _, um = self.ctx.units(self.spec.rendering, self.spec.tokenizer, self.spec.rate_hz)
            self._unit_tokenizer = load_tokenizer(um["tokenizer_folder"])
        return self._unit_tokenizer

    # -- one utterance --------------------------------------------------------------------------------------
    def row(self, text: str, item_id: str, phones=None) -> tuple[dict | None, str]:
        """A written utterance → a corpus-like row, or (None, reason). Given phones (ARPAbet, stress digits
        optional) replace g2p's; an item with phones and no spelling renders in phone and speech views only.
        A spelling that normalises to another number of words than the given phones (a hyphenated
        "brother-in-law" against one word of gold phones) keeps its words for text views and is spoken from
        the given phones, like a pseudoword."""
        given = _given_phones(phones) if phones is not None else None
        if given is None and not text.strip():
            return None, "no_transcript"
        if given is not None and not text.strip():
            if self.spec.view_family.spelled:
                return None, "no_spelling"
            words = [f"/{'.'.join(p)}/" for p in given[0]]  # never a training word: in_vocab stays False
            return {"id": item_id, "words": words, "text": " ".join(words), "phones": given[0],
                    "stress": given[1], "phone_route": ["given"] * len(words)}, ""
        row, reason = sentence_row(text, self.corpus_cfg)
        if row is None:
            return None, reason or "unrenderable"
        if given is not None:
            row["phones"], row["stress"] = given
            row["phone_route"] = ["given"] * len(given[0])
        row["id"] = item_id
        return row, ""

    def encode_row(self, row: dict, rendering: str | None, params_id: str) -> np.ndarray:
        if "audio" in row:  # a released file: its units, whole (no alignment tells where speech starts)
            path = row["audio"]
            if path not in self._audio_ids:
                from modevo.tasks.audio import read_audio

                pcm, notes = read_audio(path)
                self._audio_notes.update(notes)
                self._audio_ids[path] = self.encoder.encode_units(self.unit_tokenizer().encode(pcm))
            return self._audio_ids[path]
        if not self.spec.view_family.item_speech(self.spec):
            return self.encoder.encode_item(row)
        record, audio = render_utterance(row, self._params(rendering, params_id))
        units = self.unit_tokenizer().encode(audio) if self.hears_audio else None
        return self.encoder.encode_item(row, rendering=record, units=units)

    # -- a whole task ---------------------------------------------------------------------------------------
    def cache_key(self, task: TaskSet, rendering: str | None) -> str:
        speech = self.stage.corpus.speech
        rinfo = None
        if rendering == RELEASED:  # the files' sizes and times: a rewritten wav is encoded again
            from modevo.tasks.audio import fingerprint

            names = [f for p in task.pairs for f in (p.correct_audio, p.incorrect_audio) if f]
            rinfo = {"name": RELEASED, "files": fingerprint(task.source["audio_dir"], names)}
        elif rendering is not None:
            rcfg = speech.renderings[rendering]
            rinfo = {"name": rendering, "config": to_dict(rcfg) | {"enabled": None, "role": None},
                     "voices": resolve_voices(rcfg, speech.allow_fallback)[0], "seed": speech.seed}
        # the encoding, not the view: views that give items the same ids share one rendering of them
        return stable_hash({"stage": STAGE_VERSION, "task": task.content_hash, "encoding": self.encoder.item_inputs,
                            "settings": keyed(dataclasses.asdict(self.stage.views)), "rendering": rinfo,
                            "max_len": self.max_len}, 16)

    def render(self, task: TaskSet, rendering: str | None = None) -> RenderedTask:
        from tqdm.auto import tqdm

        if rendering == RELEASED and task.audio != "released":
            raise InputError(f"task {task.name} has no released audio to test on")
        if rendering not in (None, RELEASED) and rendering not in self.stage.corpus.speech.renderings:
            raise InputError(f"unknown test rendering '{rendering}' (configured: "
                             f"{', '.join(self.stage.corpus.speech.renderings)})")
        key = self.cache_key(task, rendering)
        encoding = self.encoder.item_inputs["name"].replace("/", "_")
        root = self.ctx.corpus.root / "tasks" / f"{task.name}-{encoding}-{rendering}-{key}"
        if (root / "items.json").exists():
            try:
                return _load(root, task, self.spec.name, rendering, key)
            except InputError as e:  # a cache entry: rendering it again is the natural repair
                log.warning("%s; rendering it again", e)
                shutil.rmtree(root, ignore_errors=True)
        out = {"correct": [], "incorrect": [], "context": [], "skipped": [], "in_vocab": [], "dropped": []}
        desc = f"render {task.name} → {self.spec.name}" + (f" @{rendering}" if rendering else "")
        self._audio_notes.clear()
        problems: list[str] = []
        for pair in tqdm(task.pairs, desc=desc, unit="pair", disable=not self.progress, leave=False):
            ids, reason, words, dropped = self._pair(pair, rendering, task, problems)
            for k, v in zip(("correct", "incorrect", "context"), ids):
                out[k].append(v)
            out["skipped"].append(reason)
            out["dropped"].append(dropped)
            out["in_vocab"].append(bool(words) and words <= self.train_words)
        skipped = Counter(s for s in out["skipped"] if s)
        if problems:
            log.warning("%s in %s: %d pair(s) skipped for their audio, e.g. %s", task.name, self.spec.name,
                        len(problems), problems[0])
        if skipped:
            log.info("%s in %s: %d of %d pairs cannot be rendered (%s)", task.name, self.spec.name,
                     sum(skipped.values()), len(task), ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())))
        with atomic_dir(root) as tmp:
            arrays = {}
            for k in ("correct", "incorrect", "context"):
                arrays[f"{k}_tokens"], arrays[f"{k}_offsets"] = _flatten(out[k])
            np.savez(tmp / "items.npz", in_vocab=np.asarray(out["in_vocab"]),
                     context_dropped=np.asarray(out["dropped"], dtype=np.int64), **arrays)
            (tmp / "items.json").write_text(json.dumps({
                "task": task.name, "task_hash": task.content_hash, "encoding": self.encoder.item_inputs,
                "rendered_for": self.spec.name, "rendering": rendering,
                "key": key, "skipped": out["skipped"], "skip_counts": dict(skipped),
                "audio": self.audio_source(rendering), "audio_notes": dict(self._audio_notes),
                "speakers": self._speakers(task, rendering), "files": {"items.npz": file_digest(tmp / "items.npz")}}))
        return _load(root, task, self.spec.name, rendering, key)

    def _speakers(self, task: TaskSet, rendering: str | None) -> dict | None:
        """Which modevo voice (and rate, pitch, range) stood in for each task speaker, when speech was
        synthesised for a task whose items name their speakers (ZeroSpeech gold voices)."""
        speakers = sorted({p.speaker for p in task.pairs if p.speaker})
        if rendering in (None, RELEASED) or not speakers:
            return None
        out = {}
        for s in speakers:
            prm = self._params(rendering, s)
            out[s] = f"{prm.voice}, {prm.rate_wpm} wpm, pitch {prm.pitch}, range {prm.pitch_range:g}"
        return out

    def _pair(self, pair: Pair, rendering: str | None, task: TaskSet,
              problems: list[str]) -> tuple[list[np.ndarray], str, set, int]:
        """(ids of correct, incorrect, context), skip reason, the pair's words, context tokens dropped.
        A context longer than the model's window is cut from the left (the oldest tokens go), the same
        cut for both members; only a continuation that cannot fit by itself makes the pair too long, except
        in a whole-sequence task (a released story), where each member keeps its last tokens."""
        from modevo.tasks.audio import AudioProblem

        empty = np.zeros(0, dtype=np.int64)
        rows = []
        for n, text in enumerate(pair.context):
            rows.append(self.row(text, f"{pair.id}/c{n}"))
        released = rendering == RELEASED
        for which, text, phones, audio in (("correct", pair.correct, pair.correct_phones, pair.correct_audio),
                                           ("incorrect", pair.incorrect, pair.incorrect_phones, pair.incorrect_audio)):
            if released:  # the file is the item; its transcript (if any) only says which words it holds
                row, _ = self.row(text, f"{pair.id}/{which}", phones) if (text.strip() or phones) else (None, "")
                rows.append(({**(row or {"words": []}), "audio": str(Path(task.source["audio_dir"]) / audio)}, ""))
            else:
                rows.append(self.row(text, f"{pair.id}/{which}", phones))
        reason = next((r for _, r in rows if r), "")
        if reason:
            return [empty, empty, empty], reason, set(), 0
        # one draw per pair (or per task speaker): the context and both members share voice, rate and pitch
        try:
            ids = [self.encode_row(r, rendering, pair.speaker or pair.id) for r, _ in rows]
        except AudioProblem as e:
            problems.append(str(e))
            return [empty, empty, empty], e.reason, set(), 0
        if any(len(x) == 0 for x in ids):
            return [empty, empty, empty], "empty_in_view", set(), 0
        context = np.concatenate([np.append(x, SEP_ID) for x in ids[:-2]]) if pair.context else empty
        dropped = 0
        if self.max_len is not None:
            room = self.max_len - 1 - max(len(ids[-2]), len(ids[-1]))  # after the leading separator
            if room < 0 and task.whole_sequence and not pair.context:
                keep = self.max_len - 1
                dropped = max(len(ids[-2]), len(ids[-1])) - keep
                ids[-2], ids[-1] = ids[-2][-keep:], ids[-1][-keep:]
            elif room < 0:
                return [empty, empty, empty], "too_long", set(), 0
            elif len(context) > room:  # keep the continuation whole and the most recent context that fits
                dropped = len(context) - room
                context = context[dropped:]
        words = {w for r, _ in (rows[:-1] if task.incorrect_is_nonword else rows) for w in r["words"]}
        return [ids[-2], ids[-1], context], "", words, dropped


def _given_phones(words) -> tuple[list[list[str]], list[list[int]]]:
    """Phones given by a task source → (phones, stress). A word given without any stress digit (e.g. from
    IPA) gets primary stress on its first vowel and 0 on the rest: one fixed rule, so both members of a
    pair are treated alike."""
    phones, stress = [], []
    for word in words:
        p, s = split_stress(list(word))
        if not any(ch.isdigit() for ph in word for ch in ph):
            first = next((k for k, x in enumerate(s) if x == 0), None)
            if first is not None:
                s[first] = 1
        phones.append(p)
        stress.append(s)
    return phones, stress


def _flatten(seqs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in seqs])]).astype(np.int64)
    tokens = np.concatenate(seqs).astype(np.int64) if seqs else np.zeros(0, np.int64)
    return tokens, offsets


def _unflatten(tokens: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [tokens[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


def _load(root: Path, task: TaskSet, view: str, rendering: str | None, key: str) -> RenderedTask:
    meta = read_json(root / "items.json", f"delete {root}")
    verify_files(root, meta.get("files", {}), "rendered task", f"delete {root}")
    with np.load(root / "items.npz", allow_pickle=False) as z:
        parts = {k: _unflatten(z[f"{k}_tokens"], z[f"{k}_offsets"]) for k in ("correct", "incorrect", "context")}
        in_vocab = z["in_vocab"].astype(bool)
        dropped = z["context_dropped"]
    return RenderedTask(task=task, view=view, rendering=rendering, skipped=meta["skipped"], in_vocab=in_vocab,
                        key=key, context_dropped=dropped, audio=meta.get("audio", "synthesised" if rendering else "none"),
                        audio_notes=meta.get("audio_notes") or None, speakers=meta.get("speakers"), **parts)

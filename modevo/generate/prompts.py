"""Held-out prompts: the SAME utterances, cut after the same words, in every view.

An utterance of the corpus's test split (never trained on) with at least `prompt_words + 2` words becomes a
prompt: its first `prompt_words` words, encoded by the view's own encoder. Which utterances is a function of
the corpus rows and a selection seed alone (a hash order of their ids), so a text run and a speech run of
one corpus are prompted with the same words and their continuations can be judged side by side.

Views without speech encode the corpus row cut to its first K words. Frame views (whose items need speech:
`view_family.item_speech`) encode the cut row with the utterance's rendering row cut to the same phones, so
phone-repeat repeats exactly those phones and speech units end where the K-th word's last phone ends (the
encoders keep the units inside [first phone start, last phone end]).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from modevo.cache import stable_hash
from modevo.errors import InputError
from modevo.views.build import ViewContext
from modevo.views.encode import Encoder
from modevo.views.registry import ViewSpec

PROMPTS_VERSION = "prompts-1"  # bump when the selection or the cut changes what a prompt is


@dataclass
class Prompt:
    id: str  # the corpus utterance id
    words: list[str]  # the prompt's words (the utterance's first K)
    reference_words: list[str]  # the rest of the utterance: what a continuation is judged against
    ids: np.ndarray  # the prompt words in this view's tokens (no separator)


def _order_key(seed: int, utt_id: str) -> str:
    """A seeded hash of the id: a fixed shuffle that does not depend on corpus order or row count."""
    return hashlib.sha256(f"{seed}:{utt_id}".encode()).hexdigest()


def select_rows(rows, n: int, prompt_words: int, seed: int) -> list[dict]:
    """The n test-split rows prompts are made from: at least prompt_words + 2 words (so something is left
    to continue and to judge), never a heading; first in the seeded hash order of their ids."""
    eligible = [r for r in rows if r["split"] == "test" and not r.get("heading")
                and len(r["words"]) >= prompt_words + 2]
    if not eligible:
        raise InputError(f"the corpus's test split has no utterance of at least {prompt_words + 2} words to "
                         f"prompt with (lower --prompt-words)")
    return sorted(eligible, key=lambda r: _order_key(seed, r["id"]))[:n]


def cut_row(row: dict, k: int) -> dict:
    """The corpus row of the utterance's first k words: words, phones, stress and routes cut alike."""
    out = dict(row)
    for key in ("words", "phones", "stress", "phone_route"):
        if key in row:
            out[key] = list(row[key][:k])
    out["text"] = " ".join(out["words"])
    return out


def cut_rendering(rendering: dict, n_phones: int) -> dict:
    """A rendering row (per-phone times and frames) cut to its first n_phones phones."""
    out = dict(rendering)
    for key in ("start_ms", "durations_ms", "frames"):
        if key in rendering:
            out[key] = list(rendering[key][:n_phones])
    return out


def make_prompts(ctx: ViewContext, spec: ViewSpec, encoder: Encoder, n: int, prompt_words: int = 3,
                 seed: int = 0) -> list[Prompt]:
    """n prompts (fewer if the test split has fewer eligible utterances) in the selection order."""
    chosen = select_rows(ctx.iter_rows("test"), n, prompt_words, seed)
    order = {r["id"]: i for i, r in enumerate(chosen)}
    family = spec.view_family
    encoded: dict[str, np.ndarray] = {}
    if family.item_speech(spec):  # the utterance's own durations (and audio units), cut after the K-th word
        tokenizer = spec.tokenizer if family.reads_units else None
        for row, rendering, units in ctx.rendered_rows(family.row_rendering(spec), "test", tokenizer, spec.rate_hz):
            if row["id"] in order:
                n_phones = sum(len(p) for p in row["phones"][:prompt_words])
                encoded[row["id"]] = encoder.encode_item(cut_row(row, prompt_words),
                                                         rendering=cut_rendering(rendering, n_phones), units=units)
    else:
        encoded = {r["id"]: encoder.encode_item(cut_row(r, prompt_words)) for r in chosen}
    return [Prompt(id=r["id"], words=list(r["words"][:prompt_words]), reference_words=list(r["words"][prompt_words:]),
                   ids=np.asarray(encoded[r["id"]], dtype=np.int64)) for r in chosen]


def prompts_hash(prompts: list[Prompt]) -> str:
    """Content hash of the prompts as this view sees them (ids, words, token ids), like a task set's."""
    return stable_hash({"version": PROMPTS_VERSION,
                        "prompts": [[p.id, p.words, p.reference_words, p.ids.tolist()] for p in prompts]}, 16)

"""`make interleave`: how much of factor C's cost text supervision removes → results/<scale>/interleave/.

Factor C's cost is the gap speech-varied → phone-repeat@varied (the same durations, no paralinguistic
variation). Each way of adding text (SpiritLM / SIMS word-level interleaving at equal total tokens or at
equal speech tokens; a TWIST-style warm start from the text-bpe model, speech only in the joint vocabulary,
beside the same model trained from scratch) gets its accuracy on the speech-only items, the share of that gap
it closes (Fieller's interval, "cannot tell" when the gap is not clear of zero) and its paired difference from
speech-varied.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from modevo.report.collect import Run, condition_label
from modevo.report.remedies import _aligned, _pct, _write
from modevo.report.tables import _fmt, interval_text, keys_of
from modevo.score import stats
from modevo.score.compare import compare
from modevo.views.registry import parse_view

GAP = ("speech@varied/{tokenizer}", "phone-repeat@varied")  # factor C: from → to
INTERLEAVED = "interleaved@varied/{tokenizer}"
TEXT = "text-bpe"  # the warm start's source


@dataclass(frozen=True)
class Condition:
    label: str  # the table's name for it
    view: str  # view template ({tokenizer})
    budget: str = "tokens"
    overrides: tuple[str, ...] = ()
    warm_from_text: bool = False  # train.init_from = the text-bpe run of the same seed
    variant: str = ""  # the run's variant tag (train/run.py run_variant) these settings give

    def name(self, tokenizer: str) -> str:
        return condition_label(self.view.format(tokenizer=tokenizer), self.variant)


SPEECH_ONLY = "views.interleave.speech_share=1.0"
CONDITIONS = (
    Condition("interleaved, equal total tokens", INTERLEAVED),
    Condition("interleaved, equal speech tokens", INTERLEAVED, budget="speech-tokens", variant="equal speech tokens"),
    Condition("joint vocabulary, speech only (from scratch)", INTERLEAVED, overrides=(SPEECH_ONLY,),
              variant="speech share 1"),
    Condition("joint vocabulary, speech only, warm start from text-bpe", INTERLEAVED, overrides=(SPEECH_ONLY,),
              warm_from_text=True, variant=f"speech share 1; init from {TEXT}"),
)


def interleave_labels(tokenizer: str) -> list[str]:
    """Every condition the campaign reports, as by_condition labels them (the gap's ends first)."""
    return [parse_view(v.format(tokenizer=tokenizer)).name for v in GAP] + [c.name(tokenizer) for c in CONDITIONS]


def interleave_rows(conditions: dict[str, list[Run]]) -> list[dict]:
    rows = []
    tokenizers = sorted({parse_view(v.split(" [")[0]).tokenizer for v in conditions
                         if parse_view(v.split(" [")[0]).tokenizer})
    for tok in tokenizers:
        start, target = (parse_view(v.format(tokenizer=tok)).name for v in GAP)
        if start not in conditions or target not in conditions:
            continue
        for cond in CONDITIONS:
            name = cond.name(tok)
            if name not in conditions:
                continue
            for key in keys_of({v: conditions[v] for v in (start, target, name)}):
                got = _aligned([conditions[start], conditions[name], conditions[target]], key)
                if got is None:
                    continue
                (s, x, t), clusters, seeds = got
                g = stats.gap_closed(s, x, t, clusters=clusters)
                row = {"tokenizer": tok, "condition": cond.label, "task": key.removeprefix("eval/"),
                       "seeds": ",".join(map(str, seeds)), "n": g["n"],
                       "speech-varied": _fmt(s.mean()), "with text": _fmt(x.mean()), "phone-repeat@varied": _fmt(t.mean()),
                       "factor C gap": interval_text(100 * g['gap'], 100 * g['gap_lo'], 100 * g['gap_hi'])
                       if "gap_lo" in g else "—",
                       "gap closed %": f"{_pct(g['closed'])} [{_pct(g['lo'])}, {_pct(g['hi'])}]", "verdict": g["verdict"], "_gap": (g["closed"], g["lo"], g["hi"])}
                runs_a, runs_b = conditions[start], conditions[name]
                if all(key in r.final for r in runs_a + runs_b):
                    c = compare([r.run_dir for r in runs_a], [r.run_dir for r in runs_b], key,
                                seeds_a=[r.seed for r in runs_a], seeds_b=[r.seed for r in runs_b])
                    d = c["diff"]
                    row["Δ vs speech-varied"] = interval_text(100 * d['mean'], 100 * d['lo'], 100 * d['hi']) + " " \
                        + c["verdict"].replace("b higher", "higher with text").replace("b lower", "lower with text")
                rows.append(row)
    return rows


def interleave_report(scale: str, tokenizer: str, out: str | Path | None = None, runs_dir="runs",
                      tracking_uri=None) -> dict:
    from modevo.report.figures import gap_closed_figure

    figure = functools.partial(gap_closed_figure, gap="speech-varied → phone-repeat@varied (factor C)",
                               label="condition")
    return _write(scale, interleave_labels(tokenizer), Path(out or Path("results") / scale / "interleave"), runs_dir,
                  tracking_uri, interleave_rows, "interleave", "Text supervision: share of factor C's cost removed", [
                      "gap closed % = (condition − speech-varied) / (phone-repeat@varied − speech-varied) on the "
                      "speech-only items all three rendered, Fieller's 95% interval; 'cannot tell' when the gap's own "
                      "95% CI includes zero",
                      "every condition is scored on speech items only (its items are speech@varied's units after a "
                      "speech mark); equal speech tokens: trained on max_tokens / speech_token_share tokens in all",
                      "warm start: blocks and text rows from the text-bpe run of the same seed (train.init_from)"],
                  figure, variants=True)

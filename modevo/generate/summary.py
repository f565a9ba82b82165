"""Continuation metrics over prompts, each with a 95% interval that resamples PROMPTS.

The samples of one prompt (its seeds) share the prompt, so they are not independent: a prompt that is easy
to continue is easy for every seed. Every interval here therefore resamples whole prompts (a cluster
bootstrap), never single samples, which would be too narrow when seeds of a prompt agree.

Two kinds of estimate:
- a mean of per-sample values (auto-BLEU, length, ...): `mean_over_prompts`, the sample-weighted mean with
  modevo.score.stats' cluster bootstrap (`hierarchical_ci` on one row, prompts as clusters): its percentile
  interval expanded to t(C−1)·SE with the cluster-robust SE, as every interval in stats is (its module doc);
- a ratio of sums (corpus perplexity = exp(−Σ log p / Σ n), OOV rate = Σ oov / Σ words):
  `ratio_over_prompts`. A resample draws C prompts with replacement and takes Σ numerator / Σ denominator
  over the drawn prompts — numerator and denominator of a prompt always travel together, so a prompt with
  long continuations weighs as much as its words. Its percentile interval is expanded the same way, with
  the linearised (delta-method) cluster-robust SE of a ratio, sqrt(C/(C−1) · Σ_c (N_c − r·D_c)² / D²).
  Perplexity is the ratio's exp(−r); exp is monotone, so its interval is the mapped interval of r.

Each returns a plain dict: mean (the estimate), lo, hi, level, n_prompts, n_samples, n_boot, seed, method
(and se, df). With a single prompt there is nothing to resample: lo and hi are nan and the method says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

from modevo.errors import InputError
from modevo.generate.metrics import auto_bleu, distinct_n
from modevo.score.stats import hierarchical_ci, t_ppf

_CHUNK_ELEMENTS = 2_000_000  # resample draws held in memory at once
UNBOUNDED = (-math.inf, math.inf)


def _prompt_codes(prompt_ids, n: int) -> tuple[np.ndarray, int]:
    ids = [str(p) for p in prompt_ids]
    if len(ids) != n:
        raise InputError(f"{len(ids)} prompt ids for {n} values: give one prompt id per (prompt, seed) sample")
    _, codes = np.unique(np.array(ids, dtype=object), return_inverse=True)
    return codes.astype(np.int64), int(codes.max()) + 1 if n else 0


def _no_interval(out: dict) -> dict:
    return {**out, "lo": math.nan, "hi": math.nan, "method": "one prompt: no interval (nothing to resample)"}


def mean_over_prompts(values, prompt_ids, n_boot: int = 10_000, level: float = 0.95, seed: int = 0,
                      bounds: tuple[float, float] = UNBOUNDED) -> dict:
    """Mean of per-(prompt, seed) values with a prompt-cluster bootstrap interval. nan values (a metric
    undefined for that sample, e.g. auto-BLEU-2 of a one-word continuation) are left out and counted in
    n_undefined. bounds: the values the mean can take (e.g. (0, 1)); the interval is cut to them."""
    vals = np.asarray(values, dtype=float)
    if vals.ndim != 1:
        raise InputError(f"values must be 1-D, one per (prompt, seed) sample (got shape {vals.shape})")
    codes, _ = _prompt_codes(prompt_ids, len(vals))
    keep = ~np.isnan(vals)
    vals, codes = vals[keep], codes[keep]
    if not len(vals):
        raise InputError("no defined values to summarise (every sample's value is nan)")
    n_prompts = len(np.unique(codes))
    out = {"mean": float(vals.mean()), "level": level, "n_prompts": n_prompts, "n_samples": len(vals),
           "n_undefined": int((~keep).sum()), "n_boot": int(n_boot), "seed": seed}
    if n_prompts < 2:
        return _no_interval(out)
    est = hierarchical_ci(vals[None, :], clusters=codes.tolist(), n_boot=n_boot, level=level, seed=seed,
                          bounds=bounds)
    return {**out, "lo": est.lo, "hi": est.hi, "se": est.se, "df": est.df,
            "method": est.method.replace("clusters", "prompts")}


def ratio_over_prompts(numerators, denominators, prompt_ids, n_boot: int = 10_000, level: float = 0.95,
                       seed: int = 0) -> dict:
    """Σ numerator / Σ denominator over all samples, with a prompt-cluster bootstrap that resamples each
    prompt's numerator and denominator together (module doc)."""
    num, den = np.asarray(numerators, dtype=float), np.asarray(denominators, dtype=float)
    if num.shape != den.shape or num.ndim != 1:
        raise InputError(f"numerators and denominators must be 1-D and alike (got {num.shape}, {den.shape})")
    if not (np.all(np.isfinite(num)) and np.all(np.isfinite(den))) or np.any(den < 0):
        raise InputError("numerators must be finite and denominators finite and ≥ 0")
    codes, n_prompts = _prompt_codes(prompt_ids, len(num))
    total = float(den.sum())
    if total <= 0:
        raise InputError("the denominators sum to 0: nothing was counted")
    ratio = float(num.sum()) / total
    out = {"mean": ratio, "level": level, "n_prompts": n_prompts, "n_samples": len(num),
           "n_boot": int(n_boot), "seed": seed}
    if n_prompts < 2:
        return _no_interval(out)
    if int(n_boot) != n_boot or n_boot < 1 or not 0 < level < 1:
        raise InputError(f"n_boot must be a positive integer and 0 < level < 1 (got {n_boot!r}, {level!r})")
    num_c = np.bincount(codes, weights=num, minlength=n_prompts)  # (C,) per-prompt sums
    den_c = np.bincount(codes, weights=den, minlength=n_prompts)

    rng = np.random.default_rng(seed)
    boot = np.empty(int(n_boot))
    chunk = max(1, _CHUNK_ELEMENTS // n_prompts)
    for start in range(0, int(n_boot), chunk):
        b = min(chunk, int(n_boot) - start)
        idx = rng.integers(0, n_prompts, size=(b, n_prompts))  # one resample = C prompts, with replacement
        with np.errstate(invalid="ignore", divide="ignore"):  # a draw of only empty prompts: nan, dropped
            boot[start:start + b] = num_c[idx].sum(axis=1) / den_c[idx].sum(axis=1)
    boot = boot[np.isfinite(boot)]
    q = 1 - (1 - level) / 2
    pct_lo, pct_hi = (float(x) for x in np.quantile(boot, [1 - q, q]))

    # small-sample expansion, as in modevo.score.stats: half-widths to t(C-1) x the delta-method CR1 SE
    resid = num_c - ratio * den_c
    se = math.sqrt(n_prompts / (n_prompts - 1) * float(resid @ resid)) / total
    df = n_prompts - 1
    spread = float(boot.std())
    lo, hi = pct_lo, pct_hi
    method = f"cluster bootstrap of a ratio over {n_prompts} prompts (numerator and denominator together)"
    if se > 0 and spread > 0:
        factor = t_ppf(q, df) * se / (NormalDist().inv_cdf(q) * spread)
        lo, hi = ratio - factor * (ratio - pct_lo), ratio + factor * (pct_hi - ratio)
        method += f", expanded to t({df} df)·SE (delta-method SE)"
    return {**out, "lo": float(lo), "hi": float(hi), "se": se, "df": float(df), "pct_lo": pct_lo,
            "pct_hi": pct_hi, "method": method}


def perplexity_over_prompts(log_probs, n_scored, prompt_ids, n_boot: int = 10_000, level: float = 0.95,
                            seed: int = 0) -> dict:
    """Corpus perplexity exp(−Σ log p / Σ n) of per-(prompt, seed) natural-log-prob sums and scored-word
    counts, with the prompt-cluster interval of the ratio mapped through exp(−·) (lo ↔ hi swap)."""
    r = ratio_over_prompts(log_probs, n_scored, prompt_ids, n_boot, level, seed)
    out = {**r, "mean": math.exp(-r["mean"]), "lo": math.exp(-r["hi"]), "hi": math.exp(-r["lo"]),
           "log_prob_per_word": {k: r[k] for k in ("mean", "lo", "hi")},
           "method": r["method"] + "; perplexity = exp(−Σ log p / Σ n)"}
    out.pop("se", None), out.pop("pct_lo", None), out.pop("pct_hi", None)  # those are on the log scale
    return out


def summarise_continuations(judge, prompt_ids: Sequence, continuations: Sequence[Sequence[str]],
                            contexts=None, ends=True, n_boot: int = 10_000, level: float = 0.95,
                            seed: int = 0) -> dict:
    """Every continuation metric over one set of (prompt, seed) samples, each with its prompt interval:
    perplexity (the judge, contexts = the prompts' words as history) and OOV rate beside it; auto-BLEU-2
    and length per continuation; distinct-1/2 across the seeds of each prompt (one value per prompt)."""
    if len(prompt_ids) != len(continuations):
        raise InputError(f"{len(prompt_ids)} prompt ids for {len(continuations)} continuations")
    scored = judge.score_all(continuations, contexts, ends)
    kw = {"n_boot": n_boot, "level": level, "seed": seed}
    out = {"perplexity": perplexity_over_prompts(scored["log_prob"], scored["n_scored"], prompt_ids, **kw),
           "oov_rate": ratio_over_prompts(scored["n_oov"], scored["n_words"], prompt_ids, **kw),
           "auto_bleu_2": mean_over_prompts([auto_bleu(c, 2) for c in continuations], prompt_ids,
                                            bounds=(0.0, 1.0), **kw),
           "n_words": mean_over_prompts(scored["n_words"], prompt_ids, bounds=(0.0, math.inf), **kw),
           "judge": judge.identity}
    by_prompt: dict[str, list] = {}
    for p, c in zip(prompt_ids, continuations):
        by_prompt.setdefault(str(p), []).append(c)
    for n in (1, 2):  # a set-level statistic: one value per prompt (over its seeds), then prompts resampled
        values = [distinct_n(cs, n) for cs in by_prompt.values()]
        out[f"distinct_{n}"] = mean_over_prompts(values, list(by_prompt), bounds=(0.0, 1.0), **kw)
    return out

"""`modevo sample`: continuations of held-out prompts from a run's last checkpoint, seeded and cached.

The paper scores what its models *generate*: each prompt (the same utterances in every view, see
prompts.py) is continued several times (one seed each) with temperature and nucleus (top-p) sampling until
the separator (id 0, the utterance boundary) or a length cap. Written to
    <run>/samples/<checkpoint stem>/samples.jsonl   one line per (prompt, seed)
    <run>/samples/<checkpoint stem>/settings.json   everything the samples depend on (written last)
A rerun with the same settings reuses the file; any change samples again.

Decoding runs through the model contract only: one causal pass over each prompt fills a key/value cache
(`model.hidden_states(ids)`), then every step feeds one token per row with `hidden_states(ids, past,
past_len)` and the lens gives the next-token logits. Rows of one batch have prompts of different lengths:
the cache is right-padded and row b's new keys go to its own slot past_len[b].

Determinism: a (prompt, seed) sample draws from its own torch.Generator seeded from (seed, prompt id), one
uniform per sampled token, so batching and batch order never change which token a draw picks. The logits
themselves are made batch-independent as scoring makes them (logprob.py): tensor shapes other than the
batch dimension are fixed by the whole prompt set (prefill length, cache length), and a batch has at least
MIN_ROWS rows (filler rows), so BLAS keeps one kernel.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from modevo.cache import atomic_write_bytes, atomic_write_json, file_digest, stable_hash
from modevo.config import require
from modevo.errors import ConfigError, InputError
from modevo.generate.prompts import PROMPTS_VERSION, Prompt, make_prompts, prompts_hash
from modevo.score.logprob import MIN_ROWS, padded_length
from modevo.views.registry import SEP_ID

log = logging.getLogger("modevo.generate")

SAMPLER_VERSION = "sample-1"  # bump when the decoding or the draw changes what a seed gives
WORDS_PER_SECOND = 2.7  # read speech (~160 words/min): turns max_seconds into tokens for views without frames


@dataclass
class SampleConfig:
    prompts: int = 100  # held-out utterances to continue (fewer if the test split has fewer)
    seeds: int = 10  # continuations per prompt (the paper: 10), seeds 0 .. seeds-1
    temperature: float = 1.0
    top_p: float = 0.9  # nucleus: the smallest set of most likely tokens whose probability reaches top_p
    max_seconds: float = 10.0  # continuation length cap, in seconds of speech (converted per view)
    prompt_words: int = 3
    selection_seed: int = 0  # which test utterances become prompts (the same in every view)
    batch_size: int = 64  # (prompt, seed) rows decoded together: speed only, never a sample
    device: str = "cpu"

    def __post_init__(self):
        try:
            require(self.prompts >= 1, f"--prompts must be at least 1, got {self.prompts}")
            require(self.seeds >= 1, f"--seeds must be at least 1, got {self.seeds}")
            require(self.temperature > 0 and math.isfinite(self.temperature),
                    f"--temperature must be above 0, got {self.temperature:g} (near 0 is greedy)")
            require(0 < self.top_p <= 1, f"--top-p must be in (0, 1], got {self.top_p:g}")
            require(self.max_seconds > 0 and math.isfinite(self.max_seconds),
                    f"--max-seconds must be above 0, got {self.max_seconds:g}")
            require(self.prompt_words >= 1, f"--prompt-words must be at least 1, got {self.prompt_words}")
            require(self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}")
        except ValueError as e:
            raise ConfigError(str(e)) from None


# -- one step's draw ------------------------------------------------------------------------------------------
def nucleus_probs(probs, top_p: float):
    """probs (..., V) → the same with every token outside the nucleus zeroed, renormalised. The nucleus is
    the most likely tokens, in order, up to and including the one whose cumulative probability reaches
    top_p (so the most likely token always stays); ties keep the lower id first."""
    import torch

    sorted_p, order = probs.sort(dim=-1, descending=True, stable=True)
    before = sorted_p.cumsum(-1) - sorted_p  # probability of the tokens ranked above each one (0 for the top)
    keep_sorted = before < top_p  # top_p > 0: the most likely token always stays
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    kept = probs * keep
    return kept / kept.sum(-1, keepdim=True)


def sample_next(logits, temperature: float, top_p: float, uniforms):
    """logits (B, V), one uniform in [0, 1) per row (B,) → (B,) token ids: the inverse CDF of the tempered,
    nucleus-filtered distribution at that uniform (fp64, so the draw is a function of the uniform alone)."""
    import torch

    probs = torch.softmax(logits.double() / temperature, dim=-1)  # (B, V)
    cdf = nucleus_probs(probs, top_p).cumsum(-1)  # (B, V)
    target = uniforms.double()[:, None] * cdf[:, -1:]  # (B, 1): against the CDF's own total (rounding)
    picked = torch.searchsorted(cdf, target, right=True)[:, 0]  # first token whose CDF passes the draw
    last_kept = (cdf < cdf[:, -1:]).sum(-1)  # where the CDF reaches its total: a draw rounded onto it lands there
    return torch.minimum(picked, last_kept)


def generator_seed(seed: int, prompt_id: str) -> int:
    return int(stable_hash({"seed": seed, "prompt": prompt_id}, 15), 16)


# -- decoding -------------------------------------------------------------------------------------------------
@dataclass
class Continuation:
    tokens: list[int]  # sampled ids, the separator not included
    stop: str  # separator | max_tokens | context (the model's window is full)
    logits: np.ndarray | None = None  # (len(tokens) + separator, V) fp32 logits of each draw, if kept


def continue_prompts(model, prompts: list[np.ndarray], generator_seeds: list[int], temperature: float, top_p: float,
                     max_tokens: int, batch_size: int = 64, keep_logits: bool = False, progress: bool = False,
                     desc: str = "sample") -> list[Continuation]:
    """Continue each prompt (view token ids, no separator) from [SEP] + prompt until the separator, max_tokens
    new tokens or the model's window, drawing row i's tokens from a generator seeded with generator_seeds[i]."""
    import torch
    from tqdm.auto import tqdm

    if len(prompts) != len(generator_seeds):
        raise ValueError("one generator seed per prompt")
    if not prompts:
        return []
    window = model.config.max_seq_len
    lengths = [len(p) for p in prompts]
    if min(lengths) < 1:
        raise InputError("a prompt has no tokens in this view")
    # the whole sequence [SEP] + prompt + continuation fits the window; the last draw is never fed back
    budget = [min(max_tokens, window - 1 - n) for n in lengths]
    if min(budget) < 1:
        raise InputError(f"a prompt of {max(lengths)} tokens leaves no room in the model's {window}-token window "
                         "(lower --prompt-words)")
    # shapes other than the batch fixed by the whole job, never by one batch's members (batch-size invariance);
    # the prefill is [SEP] + prompt[:-1] (prompt-length tokens), its last token is fed as the first step
    prefill_len = min(padded_length(max(lengths)), window - 1)
    cache_len = max(prefill_len, max(n + b for n, b in zip(lengths, budget)))
    device = next(model.parameters()).device
    out: list[Continuation | None] = [None] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])  # similar lengths share a batch (speed)
    bar = tqdm(total=len(prompts), desc=desc, unit="sample", disable=not progress, leave=False)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            results = _decode_batch(model, [prompts[i] for i in rows], [generator_seeds[i] for i in rows],
                                    [budget[i] for i in rows], [budget[i] < max_tokens for i in rows], temperature,
                                    top_p, prefill_len, cache_len, device, keep_logits)
            for i, result in zip(rows, results):
                out[i] = result
            bar.update(len(rows))
    bar.close()
    return out


def _decode_batch(model, prompts, seeds, budget, window_capped, temperature, top_p, prefill_len, cache_len, device,
                  keep_logits) -> list[Continuation]:
    import torch

    n = len(prompts)
    R = max(n, MIN_ROWS)  # filler rows after the real ones (a prompt of one separator), never read
    ids = torch.full((R, prefill_len), SEP_ID, dtype=torch.long)  # (R, P) right-padded
    past_len = torch.ones(R, dtype=torch.long)  # valid cached tokens per row
    step_in = [SEP_ID] * R  # the token each row feeds next
    for b, p in enumerate(prompts):
        ids[b, 1:len(p)] = torch.as_tensor(np.asarray(p[:-1], dtype=np.int64))
        past_len[b] = len(p)
        step_in[b] = int(p[-1])
    _, kv = model.hidden_states(ids.to(device))  # causal: right padding never reaches a real position
    cache = []
    for k, v in kv:  # (R, K, P, D) each → slots (R, K, cache_len, D)
        ck = k.new_zeros(R, k.shape[1], cache_len, k.shape[3])
        cv = v.new_zeros(R, v.shape[1], cache_len, v.shape[3])
        ck[:, :, :prefill_len], cv[:, :, :prefill_len] = k, v
        cache.append((ck, cv))
    past_len = past_len.to(device)
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    tokens: list[list[int]] = [[] for _ in range(n)]
    logits_kept: list[list[np.ndarray]] = [[] for _ in range(n)]
    stop = [""] * n
    active = torch.zeros(R, dtype=torch.bool)
    active[:n] = True
    slot = torch.arange(R, device=device)
    while bool(active.any()):
        fed = torch.tensor(step_in, dtype=torch.long, device=device)[:, None]  # (R, 1)
        hiddens, kv = model.hidden_states(fed, past=cache, past_len=past_len)
        logits = model.lens(hiddens[-1])[:, 0]  # (R, V) fp32: the next-token logits of every row
        for (ck, cv), (k, v) in zip(cache, kv):  # row b's new key and value go to its own slot past_len[b]
            ck[slot, :, past_len] = k[:, :, 0]
            cv[slot, :, past_len] = v[:, :, 0]
        live = active.nonzero()[:, 0].tolist()
        uniforms = torch.stack([torch.rand((), generator=generators[b], dtype=torch.float64) for b in live])
        drawn = sample_next(logits[live].cpu(), temperature, top_p, uniforms).tolist()
        for b, token in zip(live, drawn):
            if keep_logits:
                logits_kept[b].append(logits[b].cpu().numpy())
            if token == SEP_ID:
                stop[b] = "separator"
            else:
                tokens[b].append(token)
                if len(tokens[b]) == budget[b]:
                    stop[b] = "context" if window_capped[b] else "max_tokens"
            if stop[b]:
                active[b] = False
            else:
                step_in[b] = token
        past_len = past_len + active.to(device)  # a finished row keeps rewriting its last slot, unread
    return [Continuation(tokens[b], stop[b], np.stack(logits_kept[b]) if keep_logits else None) for b in range(n)]


# -- a run ----------------------------------------------------------------------------------------------------
def max_new_tokens(spec, manifest: dict, seconds: float) -> int:
    """max_seconds in this view's tokens: frames per second for frame views, else seconds × words per
    second × the built view's tokens per word."""
    if spec.frame_level:
        return max(1, int(math.ceil(spec.rate_hz * seconds)))
    return max(1, int(math.ceil(seconds * WORDS_PER_SECOND * manifest["tokens_per_word"])))


@dataclass
class SampleResult:
    folder: Path
    reused: bool
    samples: list[dict]
    settings: dict


def _settings_match(folder: Path, key: dict) -> dict | None:
    """The finished settings.json of these settings whose samples.jsonl is intact, else None."""
    try:
        saved = json.loads((folder / "settings.json").read_text())
    except (OSError, ValueError):
        return None
    if {k: saved.get(k) for k in key} != key or not (folder / "samples.jsonl").is_file():
        return None
    return saved if file_digest(folder / "samples.jsonl") == saved.get("samples_sha256") else None


def _read_samples(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def sample_run(run_dir: str | Path, cfg: SampleConfig, progress: bool = True, checkpoint: str | Path | None = None,
               force: bool = False) -> SampleResult:
    """Sample continuations of cfg.prompts held-out prompts × cfg.seeds from a run's last checkpoint (or the
    one named); reuses a finished samples.jsonl of the same settings unless force."""
    from modevo.config import load
    from modevo.score.evaluate import checkpoints_of, load_checkpoint
    from modevo.train.config import TrainStageConfig
    from modevo.train.run import code_version, quiet_libraries
    from modevo.units.base import resolve_device
    from modevo.views.build import ViewContext, build_view, encoder_and_inputs, load_view
    from modevo.views.registry import parse_view

    quiet_libraries()
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise InputError(f"{run_dir} is not a run folder (no config.yaml)")
    stage = load(TrainStageConfig, run_dir / "config.yaml")
    ckpt = Path(checkpoint) if checkpoint is not None else checkpoints_of(run_dir, "final")[0]
    device = resolve_device(cfg.device)
    spec = parse_view(stage.train.view, stage.views.tokenizer)
    ctx = ViewContext(stage, progress)
    encoder, _, _ = encoder_and_inputs(spec, ctx)
    manifest = load_view(build_view(spec, ctx)).manifest  # cached: built when the run trained
    prompts = make_prompts(ctx, spec, encoder, cfg.prompts, cfg.prompt_words, cfg.selection_seed)
    max_tokens = max_new_tokens(spec, manifest, cfg.max_seconds)
    key = {"version": SAMPLER_VERSION, "prompts_version": PROMPTS_VERSION, "view": spec.name, "checkpoint": ckpt.name,
           **{k: v for k, v in asdict(cfg).items() if k not in ("batch_size", "device")},
           "prompts_found": len(prompts), "prompts_hash": prompts_hash(prompts), "max_new_tokens": max_tokens,
           "max_new_tokens_rule": (f"{spec.rate_hz:g} frames/s × max_seconds" if spec.frame_level else
                                   f"max_seconds × {WORDS_PER_SECOND} words/s × {manifest['tokens_per_word']:.4g} "
                                   "tokens/word (the view's manifest)"),
           # fp32 on a GPU rounds differently from the CPU: a draw near a boundary may pick another token
           "device": "cpu" if device == "cpu" else "cuda"}
    folder = run_dir / "samples" / ckpt.stem
    if not force and (saved := _settings_match(folder, key)) is not None:
        log.info("%s: reusing %s (same settings)", run_dir, folder / "samples.jsonl")
        return SampleResult(folder, True, _read_samples(folder / "samples.jsonl"), saved)
    if len(prompts) < cfg.prompts:
        log.warning("%s: the test split has %d utterance(s) of %d+ words: %d prompt(s), not %d", spec.name,
                    len(prompts), cfg.prompt_words + 2, len(prompts), cfg.prompts)
    model, payload = load_checkpoint(ckpt, spec.name, encoder.vocab)
    model = model.float().to(device).eval()
    jobs = [(p, s) for p in prompts for s in range(cfg.seeds)]
    found = continue_prompts(model, [p.ids for p, _ in jobs], [generator_seed(s, p.id) for p, s in jobs],
                             cfg.temperature, cfg.top_p, max_tokens, cfg.batch_size, progress=progress,
                             desc=f"sample {spec.name}")
    samples = [_line(p, s, c, encoder) for (p, s), c in zip(jobs, found)]
    data = "".join(json.dumps(x) + "\n" for x in samples).encode()
    atomic_write_bytes(folder / "samples.jsonl", data)
    settings = {**key, "code_version": code_version(), "tokens_seen": int(payload.get("tokens", 0)),
                "run_dir": str(run_dir), "samples": len(samples), "context_window": model.config.max_seq_len,
                "samples_sha256": hashlib.sha256(data).hexdigest()}  # reuse checks the file against it
    atomic_write_json(folder / "settings.json", settings)  # last: its presence says the samples are whole
    return SampleResult(folder, False, samples, settings)


def _line(prompt: Prompt, seed: int, c: Continuation, encoder) -> dict:
    return {"prompt_id": prompt.id, "seed": seed, "prompt_words": prompt.words,
            "reference_words": prompt.reference_words, "prompt_ids": prompt.ids.tolist(),
            "continuation_ids": c.tokens, "continuation": encoder.decode(c.tokens),
            "stopped_at_separator": c.stop == "separator", "stop": c.stop}

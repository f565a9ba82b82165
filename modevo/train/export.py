"""`modevo export --format hf`: a run's milestone as a Hugging Face `LlamaForCausalLM` folder.

modevo's decoder (model.py) is a Llama in all but names: pre-norm RMSNorm blocks (statistics in fp32, as
`LlamaRMSNorm`), rotary embeddings in the rotate-half layout with inv_freq = theta^(-2i/D) (Hugging Face's
default rope, so q and k need no permutation), grouped-query attention with no biases, a SwiGLU MLP
(silu(gate) * up → down) and an optionally tied LM head; no embedding scaling. The export only re-cuts
the fused matrices: `qkv` rows are [q heads | k heads | v heads] → q_proj, k_proj, v_proj; `gate_up` rows
are [gate | up] → gate_proj, up_proj. Written to <out> (default <run>/export/hf-<milestone stem>/):

    config.json, generation_config.json, model.safetensors   what `LlamaForCausalLM.from_pretrained` reads
    vocab.json            the view's vocabulary: {"id_to_token": [...], "separator_id": 0, ...}
    modevo_export.json    the run, milestone, view, tokens seen, model config and code version it came from

so transformer-lens / nnsight / tuned-lens can analyse a modevo model. Token id 0 is the utterance
separator in every view (bos = eos = 0); there is no padding token. A model config with a field this
mapping does not know (a feature Llama lacks) is refused with one line naming it, never exported wrongly.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

from modevo.cache import atomic_write_json
from modevo.errors import InputError

FORMATS = ("hf",)
EXPORT_VERSION = "hf-llama-1"
# every ModelConfig field and how it maps; a field outside this table is a feature the export does not know
MAPPED_FIELDS = {"vocab_size", "n_layer", "n_head", "n_kv_head", "d_model", "d_ff", "max_seq_len", "rope_theta",
                 "norm_eps", "tie_embeddings", "dropout"}
_MILESTONE = re.compile(r"^tokens-(\d+)$")


def milestone_files(run_dir: Path) -> list[Path]:
    """A run's checkpoints/tokens-*.pt in training order (zero-padded token counts sort in order)."""
    return sorted((run_dir / "checkpoints").glob("tokens-*.pt"))


def find_milestone(run_dir: Path, milestone: str = "final") -> Path:
    """`final` (the last milestone), a milestone's name (tokens-000123 or tokens-000123.pt), its token
    count (123) or a path to a .pt file → the checkpoint; anything else is one line listing the choices."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise InputError(f"{run_dir} is not a run folder (no config.yaml)")
    found = milestone_files(run_dir)
    if not found:
        raise InputError(f"run {run_dir} has no checkpoints (checkpoints/tokens-*.pt): train it first")
    if milestone in ("final", "last", ""):
        return found[-1]
    p = Path(milestone)
    if p.suffix == ".pt" and p.is_file():
        return p
    stem = p.name.removesuffix(".pt")
    for f in found:
        m = _MILESTONE.match(f.stem)
        if f.stem == stem or (stem.isdigit() and m and int(m.group(1)) == int(stem)):
            return f
    raise InputError(f"run {run_dir} has no milestone '{milestone}' (have: final, "
                     f"{', '.join(f.stem for f in found)})")


def llama_config(cfg) -> "object":
    """modevo's ModelConfig → transformers.LlamaConfig; refuses a field the mapping does not know."""
    from transformers import LlamaConfig

    unknown = sorted(f.name for f in dataclasses.fields(cfg) if f.name not in MAPPED_FIELDS)
    if unknown:
        raise InputError(f"model.{unknown[0]} has no Llama equivalent known to the export: the checkpoint "
                         f"cannot be written as LlamaForCausalLM")
    return LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.ff_dim,
        num_hidden_layers=cfg.n_layer, num_attention_heads=cfg.n_head, num_key_value_heads=cfg.n_kv_head,
        head_dim=cfg.head_dim, hidden_act="silu", max_position_embeddings=cfg.max_seq_len,
        rms_norm_eps=cfg.norm_eps, rope_parameters={"rope_type": "default", "rope_theta": float(cfg.rope_theta)},
        attention_bias=False, mlp_bias=False, attention_dropout=0.0, tie_word_embeddings=cfg.tie_embeddings,
        bos_token_id=0, eos_token_id=0, pad_token_id=None, initializer_range=0.02, use_cache=True,
        architectures=["LlamaForCausalLM"])


def llama_state_dict(state_dict: dict, cfg) -> dict:
    """modevo GPT weights → LlamaForCausalLM's names (fused q/k/v and gate/up split; tensors contiguous).
    A weight the mapping does not place (a module Llama lacks) is refused, naming it."""
    H, K, D, F = cfg.n_head, cfg.n_kv_head, cfg.head_dim, cfg.ff_dim
    sd = dict(state_dict)
    out = {"model.embed_tokens.weight": sd.pop("tok_emb.weight"), "model.norm.weight": sd.pop("final_norm.weight")}
    head = sd.pop("lm_head.weight", None)
    if not cfg.tie_embeddings:
        out["lm_head.weight"] = head
    for i in range(cfg.n_layer):
        b, o = f"blocks.{i}.", f"model.layers.{i}."
        qkv = sd.pop(b + "attn.qkv.weight")  # (H·D + 2·K·D, C): query heads, key heads, value heads
        q, k, v = qkv.split([H * D, K * D, K * D], dim=0)
        gate, up = sd.pop(b + "mlp.gate_up.weight").split([F, F], dim=0)  # (2F, C): gate rows, then up rows
        out.update({o + "input_layernorm.weight": sd.pop(b + "attn_norm.weight"),
                    o + "self_attn.q_proj.weight": q, o + "self_attn.k_proj.weight": k,
                    o + "self_attn.v_proj.weight": v, o + "self_attn.o_proj.weight": sd.pop(b + "attn.proj.weight"),
                    o + "post_attention_layernorm.weight": sd.pop(b + "mlp_norm.weight"),
                    o + "mlp.gate_proj.weight": gate, o + "mlp.up_proj.weight": up,
                    o + "mlp.down_proj.weight": sd.pop(b + "mlp.down.weight")})
    if sd:
        raise InputError(f"weight {sorted(sd)[0]} has no place in LlamaForCausalLM: the checkpoint cannot be "
                         "exported as Llama")
    return {k: v.detach().float().contiguous().clone() for k, v in out.items()}


def _vocab(payload: dict, run_dir: Path) -> list[str]:
    """The view's vocabulary: saved in the milestone since training saves it; else rebuilt from the run's view."""
    if payload.get("vocab") is not None:
        return [str(t) for t in payload["vocab"]]
    from modevo.config import load
    from modevo.train.config import TrainStageConfig
    from modevo.views.build import ViewContext, encoder_and_inputs
    from modevo.views.registry import parse_view

    stage = load(TrainStageConfig, run_dir / "config.yaml")
    spec = parse_view(stage.train.view, stage.views.tokenizer)
    encoder, _, _ = encoder_and_inputs(spec, ViewContext(stage, False))
    return list(encoder.vocab)


def export_hf(run_dir: str | Path, milestone: str = "final", out: str | Path | None = None,
              force: bool = False) -> Path:
    """Write a run's milestone as a LlamaForCausalLM folder; returns the folder."""
    import torch

    from modevo.train.model_config import ModelConfig

    run_dir = Path(run_dir)
    ckpt = find_milestone(run_dir, milestone)
    try:
        payload = torch.load(ckpt, map_location="cpu", weights_only=True)
        cfg = ModelConfig(**payload["model_config"])
        state = payload["state_dict"]
    except TypeError as e:  # a model_config key ModelConfig lacks
        raise InputError(f"checkpoint {ckpt}: its model config does not fit this modevo ({e})") from None
    except Exception as e:  # noqa: BLE001 (unreadable, truncated or not a milestone: one line for all)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise InputError(f"checkpoint {ckpt} cannot be read as modevo weights: {first}") from None
    hf_cfg = llama_config(cfg)
    tensors = llama_state_dict(state, cfg)
    vocab = _vocab(payload, run_dir)
    if len(vocab) != cfg.vocab_size:
        raise InputError(f"checkpoint {ckpt}: {cfg.vocab_size} embedding rows but a vocabulary of {len(vocab)} tokens")
    folder = Path(out) if out is not None else run_dir / "export" / f"hf-{ckpt.stem}"
    if folder.is_file() or (folder.is_dir() and any(folder.iterdir()) and not (folder / "modevo_export.json").is_file()
                            and not force):
        raise InputError(f"{folder} exists and is not a modevo export: choose another --out (or --force)")
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _write_export(tmp, hf_cfg, tensors, vocab, run_dir, ckpt, milestone, payload, cfg)
    except BaseException:  # a full disk: no half-written export left beside the finished ones
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if folder.exists():
        shutil.rmtree(folder)  # an earlier export (or, with force, whatever was there)
    tmp.replace(folder)
    return folder


def _write_export(tmp: Path, hf_cfg, tensors, vocab, run_dir, ckpt, milestone, payload, cfg) -> None:
    from safetensors.torch import save_file

    from modevo.train.run import code_version

    hf_cfg.save_pretrained(tmp)
    from transformers import GenerationConfig

    GenerationConfig(bos_token_id=0, eos_token_id=0).save_pretrained(tmp)  # generate() stops at the separator
    save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    atomic_write_json(tmp / "vocab.json", {
        "id_to_token": vocab, "separator_id": 0, "separator": vocab[0],
        "note": "token ids of the modevo view; id 0 separates utterances (bos = eos = 0); a sequence the model "
                "was trained on is <sep> utterance <sep> utterance <sep> ..."})
    atomic_write_json(tmp / "modevo_export.json", {
        "format": "hf", "export_version": EXPORT_VERSION, "architecture": "LlamaForCausalLM",
        "run_dir": str(run_dir.resolve()), "checkpoint": ckpt.name, "milestone": milestone,
        "view": payload.get("view"), "tokens_seen": int(payload.get("tokens", 0) or 0),
        "mlflow_run_id": payload.get("mlflow_run_id"), "model_config": dataclasses.asdict(cfg),
        "code_version": code_version(),
        "mapping": "qkv rows → q_proj | k_proj | v_proj; gate_up rows → gate_proj | up_proj; rope rotate-half "
                   "(Hugging Face's layout, no permutation); lm_head tied to embed_tokens where tie_embeddings"})

"""`modevo export --format hf`: a milestone as LlamaForCausalLM gives modevo's logits, layer by layer."""

import json
from pathlib import Path

import pytest
import torch

from modevo.cli import main
from modevo.train.model import GPT
from modevo.train.model_config import ModelConfig


def _fake_run(tmp_path: Path, tie: bool, seed: int = 0) -> tuple[Path, GPT, list[str]]:
    """A run folder holding one milestone saved the way training saves it (train/callbacks.save_weights):
    a random model with GQA, a non-default rope theta, norm eps and SwiGLU width, and non-unit norms."""
    from modevo.train.callbacks import save_weights

    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=37, n_layer=3, n_head=4, n_kv_head=2, d_model=32, d_ff=48, max_seq_len=64,
                      rope_theta=500.0, norm_eps=1e-6, tie_embeddings=tie)
    model = GPT(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.3 * torch.randn_like(p))  # so a norm left at ones in the export would show
    vocab = ["<s>"] + [f"t{i}" for i in range(cfg.vocab_size - 1)]
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("train: {view: phone}\n")

    class Module:
        pass

    module = Module()
    module.model = model
    for tokens in (64, 128):
        save_weights(module, run / "checkpoints" / f"tokens-{tokens:012d}.pt",
                     {"view": "phone", "vocab": vocab, "tokens": tokens, "mlflow_run_id": None})
    return run, model, vocab


@pytest.mark.parametrize("tie", [True, False])
def test_exported_llama_logits_equal_modevo(tmp_path, tie):
    from transformers import LlamaForCausalLM

    from modevo.train.export import export_hf

    run, model, vocab = _fake_run(tmp_path, tie)
    folder = export_hf(run)
    assert folder == run / "export" / "hf-tokens-000000000128"
    assert {"config.json", "generation_config.json", "model.safetensors", "vocab.json", "modevo_export.json"} <= {p.name for p in folder.iterdir()}
    hf = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    assert hf.config.tie_word_embeddings is tie
    ids = torch.randint(0, len(vocab), (3, 50), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, hiddens = model(ids, return_hidden=True)
        out = hf(ids, output_hidden_states=True)
    assert torch.allclose(out.logits, ours, atol=1e-4, rtol=0), (out.logits - ours).abs().max()
    # every layer's residual stream too (HF's last hidden state is after the final norm: compare the ones before)
    for layer in range(len(hiddens) - 1):
        assert torch.allclose(out.hidden_states[layer], hiddens[layer], atol=1e-4, rtol=0), layer
    with torch.no_grad():
        assert torch.allclose(out.hidden_states[-1], model.final_norm(hiddens[-1]), atol=1e-4, rtol=0)
    saved = json.loads((folder / "vocab.json").read_text())
    assert saved["id_to_token"] == vocab and saved["separator_id"] == 0
    meta = json.loads((folder / "modevo_export.json").read_text())
    assert meta["checkpoint"] == "tokens-000000000128.pt" and meta["view"] == "phone" and meta["tokens_seen"] == 128
    assert meta["code_version"]


def test_milestone_choice_and_reexport(tmp_path):
    from modevo.train.export import export_hf

    run, _, _ = _fake_run(tmp_path, True)
    first = export_hf(run, "64")
    assert first.name == "hf-tokens-000000000064"
    assert export_hf(run, "tokens-000000000064") == first  # an earlier export of ours is replaced
    assert json.loads((first / "modevo_export.json").read_text())["tokens_seen"] == 64


def test_cli_export_and_its_errors(tmp_path, capsys):
    run, _, _ = _fake_run(tmp_path, True)
    assert main(["export", "--run", str(run), "--out", str(tmp_path / "hf")]) == 0
    assert "exported" in capsys.readouterr().out
    assert (tmp_path / "hf" / "model.safetensors").is_file()

    assert main(["export", "--run", str(tmp_path / "no-such-run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("modevo: error:") and "no-such-run" in err[0]

    assert main(["export", "--run", str(run), "--milestone", "999"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no milestone '999'" in err[0]

    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert main(["export", "--run", str(run), "--out", str(tmp_path / "busy")]) == 2
    assert "not a modevo export" in capsys.readouterr().err
    assert (tmp_path / "busy" / "notes.txt").is_file()


def test_unknown_model_feature_is_refused(tmp_path):
    from modevo.errors import InputError
    from modevo.train.export import llama_state_dict

    cfg = ModelConfig(vocab_size=9, n_layer=1, n_head=2, n_kv_head=2, d_model=8, max_seq_len=8)
    sd = GPT(cfg).state_dict()
    sd["blocks.0.attn.q_norm.weight"] = torch.ones(4)
    with pytest.raises(InputError, match="q_norm"):
        llama_state_dict(sd, cfg)

"""The decoder and its contract: logits, hiddens, logit lens, counts, loss, dtypes, configs."""

import dataclasses
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from modevo.config import load
from modevo.errors import ConfigError
from modevo.train.model import GPT
from modevo.train.model_config import ModelConfig, swiglu_hidden

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "model"
V = 50


def tiny(**kw) -> ModelConfig:
    base = dict(vocab_size=V, n_layer=2, n_head=4, n_kv_head=2, d_model=32, max_seq_len=64)
    return ModelConfig(**{**base, **kw})


def make(**kw) -> GPT:
    torch.manual_seed(0)
    return GPT(tiny(**kw)).eval()


def ids(B=2, T=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, V, (B, T), generator=g)


def test_logits_hiddens_and_lens():
    model, x = make(), ids()
    logits = model(x)
    assert logits.shape == (2, 16, V) and logits.dtype == torch.float32
    logits2, hiddens = model(x, return_hidden=True)
    assert len(hiddens) == model.config.n_layer + 1
    assert all(h.shape == (2, 16, 32) for h in hiddens)
    assert torch.equal(logits2, logits)
    assert torch.equal(model.lens(hiddens[-1]), logits)
    assert model.lens(hiddens[0]).shape == (2, 16, V)
    assert model.config.n_layer == 2


def test_causal():
    model, x = make(), ids(B=1, T=20)
    t = 11
    y = x.clone()
    y[0, t] = (y[0, t] + 1) % V
    a, b = model(x), model(y)
    assert torch.equal(a[:, :t], b[:, :t])
    assert not torch.allclose(a[:, t:], b[:, t:])


def test_rows_are_independent():
    model, x = make(), ids(B=4)
    torch.testing.assert_close(model(x[2:3]), model(x)[2:3], atol=1e-5, rtol=1e-5)


def test_a_few_steps_learn_a_fixed_batch():
    model = make().train()
    x = ids(B=2, T=16)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-2)
    losses = []
    for _ in range(10):
        _, loss = model(x[:, :-1], targets=x[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_shorter_ok_longer_raises():
    model = make()
    assert model(ids(T=5)).shape == (2, 5, V)
    assert model(ids(T=64)).shape == (2, 64, V)
    with pytest.raises(ValueError, match=r"65.*64"):
        model(ids(T=65))


def test_tied_and_untied_embeddings():
    tied, untied = make(), make(tie_embeddings=False)
    assert tied.lm_head.weight.data_ptr() == tied.tok_emb.weight.data_ptr()
    assert untied.lm_head.weight.data_ptr() != untied.tok_emb.weight.data_ptr()


@pytest.mark.parametrize("tie", [True, False])
def test_param_counts_by_hand(tie):
    # d 32, 4 heads of 8, 2 KV heads, d_ff default 8/3·32 → 128 (rounded up to 64), 2 layers
    model = make(tie_embeddings=tie)
    d, f, kv = 32, 128, 2 * 8
    assert model.config.ff_dim == f == swiglu_hidden(32)
    per_layer = d * (d + 2 * kv) + d * d + 3 * d * f + 2 * d  # qkv, proj, gate_up + down, two norms
    non_emb = 2 * per_layer + d  # + final norm
    emb = V * d * (1 if tie else 2)
    assert model.param_counts() == {"total": non_emb + emb, "non_embedding": non_emb}
    assert model.param_counts()["total"] == sum(p.numel() for p in model.parameters())


def test_paper_config_on_meta_device():
    cfg = load(ModelConfig, CONFIGS / "paper.yaml")
    with torch.device("meta"):
        model = GPT(cfg)
    counts = model.param_counts()
    assert 1.0e9 < counts["total"] < 1.2e9
    assert 0 < counts["non_embedding"] < counts["total"]
    assert all(p.is_meta for p in model.parameters())


def test_meta_model_materialises():
    with torch.device("meta"):
        model = GPT(tiny())
    model.to_empty(device="cpu")
    torch.manual_seed(0)
    model.init_weights()
    assert model.lm_head.weight is model.tok_emb.weight
    assert torch.isfinite(model(ids())).all()


def test_loss_matches_cross_entropy_and_ignores():
    model, x = make(), ids()
    t = torch.roll(x, -1, dims=1)
    t[0, :5] = -100
    logits, loss = model(x, targets=t)
    assert torch.equal(logits, model(x))
    keep = t != -100
    expected = F.cross_entropy(logits[keep], t[keep])
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(loss, F.cross_entropy(logits.flatten(0, 1), t.flatten(), ignore_index=-100))
    logits3, loss3, hiddens = model(x, targets=t, return_hidden=True)
    assert torch.equal(loss3, loss) and len(hiddens) == 3


def test_bf16_returns_fp32_logits_and_finite_loss():
    model = make().to(torch.bfloat16)
    x = ids()
    logits, hiddens = model(x, return_hidden=True)
    assert logits.dtype == torch.float32 and hiddens[-1].dtype == torch.bfloat16
    assert torch.equal(model.lens(hiddens[-1]), logits)
    model.train()
    _, loss = model(x, targets=torch.roll(x, -1, dims=1))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert model.tok_emb.weight.grad is not None and torch.isfinite(model.tok_emb.weight.grad.float()).all()


@pytest.mark.parametrize("kv", [1, 2, 4])
def test_gqa_shapes(kv):
    model = make(n_kv_head=kv)
    logits, hiddens = model(ids(), return_hidden=True)
    assert logits.shape == (2, 16, V) and hiddens[-1].shape == (2, 16, 32)


def test_dropout_trains_and_eval_is_deterministic():
    model = make(dropout=0.1)
    x = ids()
    assert torch.equal(model(x), model(x))
    model.train()
    _, loss = model(x, targets=x)
    loss.backward()


@pytest.mark.parametrize("bad, message", [
    (dict(d_model=30), "divisible by n_head"),
    (dict(n_kv_head=3), "multiple of n_kv_head"),
    (dict(n_kv_head=8), "multiple of n_kv_head"),
    (dict(d_model=24, n_head=8), "must be even"),
    (dict(n_layer=0), "n_layer must be positive"),
    (dict(d_ff=0), "d_ff"),
    (dict(dropout=1.0), "dropout"),
])
def test_invalid_configs(bad, message):
    with pytest.raises(ValueError, match=message):
        tiny(**bad)
    overrides = [f"{k}={v}" for k, v in bad.items()]
    with pytest.raises(ConfigError, match=message):
        load(ModelConfig, CONFIGS / "smoke.yaml", overrides)


def test_unset_vocab_raises_clearly():
    cfg = load(ModelConfig, CONFIGS / "smoke.yaml")
    assert cfg.vocab_size == 0
    with pytest.raises(ConfigError, match="vocab_size"):
        GPT(cfg)
    assert GPT(cfg.with_vocab(40)).config.vocab_size == 40


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_model_yaml_loads(path):
    cfg = load(ModelConfig, path)
    assert path.read_text().startswith("#")  # each says what it is for
    with torch.device("meta"):
        model = GPT(cfg if cfg.vocab_size else cfg.with_vocab(40))
    assert model.param_counts()["total"] > 0
    assert dataclasses.asdict(cfg)["d_model"] == cfg.d_model


def test_shapes_of_the_scales():
    smoke, cpu, paper = (load(ModelConfig, CONFIGS / f"{n}.yaml") for n in ("smoke", "cpu", "paper"))
    assert (smoke.n_layer, smoke.d_model, smoke.n_head, smoke.n_kv_head, smoke.max_seq_len) == (2, 64, 4, 2, 256)
    assert (cpu.n_layer, cpu.d_model, cpu.n_head, cpu.n_kv_head, cpu.max_seq_len) == (6, 256, 8, 4, 512)
    assert (paper.n_layer, paper.d_model, paper.n_head, paper.n_kv_head, paper.ff_dim, paper.max_seq_len,
            paper.vocab_size) == (22, 2048, 32, 4, 5632, 2048, 32000)


def test_hidden_states_are_the_forwards_and_continue_a_cached_prefix():
    model, x = make(), ids(B=3, T=30)
    _, ref = model(x, return_hidden=True)
    states, kv = model.hidden_states(x)
    assert all(torch.equal(a, b) for a, b in zip(states, ref))  # the same states, without the logits
    assert len(kv) == model.config.n_layer and kv[0][0].shape == (3, 2, 30, 8)  # (B, K, T, D)
    plen = torch.tensor([10, 4, 12])  # prefixes right-padded to 12; their padding must not be attended to
    pre = torch.full((3, 12), 7)
    for b in range(3):
        pre[b, :plen[b]] = x[b, :plen[b]]
    _, past = model.hidden_states(pre)
    cont = torch.stack([x[b, plen[b]:plen[b] + 9] for b in range(3)])
    got, _ = model.hidden_states(cont, past=past, past_len=plen)
    for layer in range(model.config.n_layer + 1):
        for b in range(3):
            torch.testing.assert_close(got[layer][b], ref[layer][b, plen[b]:plen[b] + 9], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="past_len"):
        model.hidden_states(cont, past=past)
    with pytest.raises(ValueError, match="max_seq_len"):
        model.hidden_states(ids(B=3, T=60), past=past, past_len=plen)

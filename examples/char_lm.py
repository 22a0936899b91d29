"""A character-level language model with gated MLPs, trained with kaun's swiglu and with the torch
composite that models write (``F.silu(gate) * up``): the same loss curve, less memory, the time
per step.

The model: token and position embeddings, a few pre-norm transformer blocks (causal self-attention,
then a gated MLP), a linear head. Two copies with the same initial weights train on the same
batches with the same optimizer: one's MLP is ``kaun.nn.GatedMLP`` (one fused pass forward and
backward, only its input saved, the gradient written over it), the other's the composite
``down(silu(gate(x)) * up(x))`` (Hugging Face LLaMA's MLP). The text is the repository's own
documentation (README.md and docs/*.md), so nothing is downloaded.

    .venv/bin/python examples/char_lm.py            # 300 steps (a few minutes on 2 cores)
    .venv/bin/python examples/char_lm.py --quick    # 40 steps, a smaller model

Prints the loss of both every few steps, then each one's time per step and the bytes autograd
saved for one step's backward (``saved_tensors_hooks``, the weights left out).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import kaun.nn as KN

ROOT = Path(__file__).resolve().parents[1]


def corpus() -> str:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return "\n".join(f.read_text(encoding="utf-8") for f in files)


class CompositeMLP(torch.nn.Module):
    """The gated MLP as models write it: ``down(silu(gate(x)) * up(x))``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.gate = torch.nn.Linear(dim, hidden, bias=False)
        self.up = torch.nn.Linear(dim, hidden, bias=False)
        self.down = torch.nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))  # type: ignore[no-any-return]


class Block(torch.nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, kaun: bool) -> None:
        super().__init__()
        self.n1, self.n2 = torch.nn.LayerNorm(dim), torch.nn.LayerNorm(dim)
        self.attn = torch.nn.MultiheadAttention(dim, heads, batch_first=True, bias=False)
        self.mlp = KN.GatedMLP(dim, hidden, "swiglu") if kaun else CompositeMLP(dim, hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.n1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.n2(x))  # type: ignore[no-any-return]


class CharLM(torch.nn.Module):
    def __init__(self, vocab: int, ctx: int, dim: int, heads: int, hidden: int, layers: int,
                 kaun: bool) -> None:
        super().__init__()
        self.tok = torch.nn.Embedding(vocab, dim)
        self.pos = torch.nn.Embedding(ctx, dim)
        self.blocks = torch.nn.ModuleList(Block(dim, heads, hidden, kaun) for _ in range(layers))
        self.norm = torch.nn.LayerNorm(dim)
        self.head = torch.nn.Linear(dim, vocab, bias=False)
        self.register_buffer("mask", torch.triu(torch.full((ctx, ctx), float("-inf")), 1))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(t))
        for b in self.blocks:
            x = b(x, self.mask[:t, :t])
        return self.head(self.norm(x))  # type: ignore[no-any-return]


def copy_weights(src: CharLM, dst: CharLM) -> None:
    """dst gets src's weights; a GatedMLP's gate_up holds [up; gate] of the composite's."""
    sd = src.state_dict()
    out = {}
    for k in dst.state_dict():
        if k.endswith("mlp.gate_up.weight"):
            p = k[: -len("gate_up.weight")]
            out[k] = torch.cat([sd[p + "up.weight"], sd[p + "gate.weight"]])
        else:
            out[k] = sd[k]
    dst.load_state_dict(out)


def saved_bytes(model: CharLM, x: torch.Tensor, y: torch.Tensor) -> int:
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        if st.data_ptr() not in weights:
            seen[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(seen.values())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--steps", type=int, default=None)
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    text = corpus()
    chars = sorted(set(text))
    data = torch.tensor([chars.index(c) for c in text])
    cfg: dict[str, Any] = (dict(ctx=32, dim=64, heads=4, hidden=192, layers=2, batch=16)
                           if a.quick else
                           dict(ctx=64, dim=128, heads=4, hidden=384, layers=3, batch=32))
    steps = a.steps or (40 if a.quick else 300)
    every = max(1, steps // 10)
    ctx, batch = cfg["ctx"], cfg["batch"]
    args = (len(chars), ctx, cfg["dim"], cfg["heads"], cfg["hidden"], cfg["layers"])
    comp, ours = CharLM(*args, kaun=False), CharLM(*args, kaun=True)
    copy_weights(comp, ours)
    opts = {m: torch.optim.AdamW(m.parameters(), lr=3e-3) for m in (comp, ours)}
    gen = torch.Generator().manual_seed(1)
    print(f"{len(text)} characters, {len(chars)} symbols; {sum(p.numel() for p in comp.parameters())} "
          f"parameters; {steps} steps of {batch} x {ctx}")
    print(f"{'step':>5} {'composite':>10} {'kaun':>10}")
    times: dict[str, list[float]] = {"composite": [], "kaun": []}
    losses: dict[str, float] = {}
    for step in range(1, steps + 1):
        i = torch.randint(0, len(data) - ctx - 1, (batch,), generator=gen)
        x = torch.stack([data[j: j + ctx] for j in i.tolist()])
        y = torch.stack([data[j + 1: j + ctx + 1] for j in i.tolist()])
        for name, m in (("composite", comp), ("kaun", ours)):
            t0 = time.perf_counter()
            loss = F.cross_entropy(m(x).flatten(0, 1), y.flatten())
            opts[m].zero_grad(set_to_none=True)
            loss.backward()
            opts[m].step()
            times[name].append(time.perf_counter() - t0)
            losses[name] = float(loss.detach())
        if step % every == 0 or step == 1:
            print(f"{step:>5} {losses['composite']:>10.4f} {losses['kaun']:>10.4f}", flush=True)
    sb = {name: saved_bytes(m, x, y) for name, m in (("composite", comp), ("kaun", ours))}
    med = {k: sorted(v[len(v) // 5:])[len(v[len(v) // 5:]) // 2] for k, v in times.items()}
    for name in ("composite", "kaun"):
        print(f"{name}: {med[name] * 1e3:.1f} ms per step (median), "
              f"{sb[name] / 2**20:.1f} MiB saved for backward")
    print(f"kaun / composite: time {med['kaun'] / med['composite']:.2f}, "
          f"saved memory {sb['kaun'] / sb['composite']:.2f}, "
          f"final loss difference {abs(losses['kaun'] - losses['composite']):.4f} "
          f"(uniform: {math.log(len(chars)):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

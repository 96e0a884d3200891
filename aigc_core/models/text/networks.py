"""The character-level language models' networks: ``bigram``, ``char_lstm`` and ``char_gpt``.

All three learn the same thing, the probability of the next character given
the ones before it, and differ only in how much of the past they can use:

- ``bigram``: only the previous character (a table of next-character logits);
- ``char_lstm``: everything so far, squeezed through a recurrent state;
- ``char_gpt``: the last ``block_size`` characters, each looked up directly
  with causal self-attention, Attention(Q, K, V) = softmax(QK^T / sqrt(d_k)) V.

The loss is the same for all of them, the cross-entropy of the true next
character::

    loss = -1/N * sum_t log p(x_{t+1} | x_1 .. x_t)      (nats per character)
    bits per character = loss / ln 2
    perplexity         = e^loss

A model that knows nothing about a V-character alphabet scores ln V nats; a
bits-per-character figure tells how many yes/no questions, on average, the
model still needs to guess the next character.

In ``lines`` mode (names, titles) every item is learned as
``<start> item <end>``: sampling starts from ``<start>`` and stops at
``<end>``, so it returns whole items. Items are padded with ``<pad>`` to a
common length and padded positions do not count in the loss.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from ...errors import UserError

if TYPE_CHECKING:
    from .config import BigramConfig, CharGPTConfig, CharLSTMConfig


# ---- models ------------------------------------------------------------------
# Every model maps ids (B, T) to next-character logits (B, T, V) and has a
# ``decode(new_ids, state) -> (logits of the last position (B, V), state)`` for
# sampling one character at a time.

class BigramLM(nn.Module):
    """p(next | current) = softmax(W[current]): a V x V table of logits.

    Trained by cross-entropy, the table converges to the log of the normalised
    bigram counts, which is exactly what counting pairs of characters gives;
    training it like the other models keeps one loop, one loss curve and one
    sampler. It starts at all zeros, so its first loss is exactly ln V.
    """

    def __init__(self, cfg: BigramConfig, vocab_size: int):
        super().__init__()
        self.table = nn.Embedding(vocab_size, vocab_size)
        nn.init.zeros_(self.table.weight)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.table(idx)  # (B, T) -> (B, T, V)

    def decode(self, idx: torch.Tensor, state=None):
        return self.table(idx[:, -1]), None  # only the last character matters


class CharLSTM(nn.Module):
    """Embedding -> stacked LSTM -> linear read-out (the articles' "GPT": a
    character RNN). The recurrent state carries the whole past."""

    def __init__(self, cfg: CharLSTMConfig, vocab_size: int):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, cfg.n_embd)
        self.lstm = nn.LSTM(cfg.n_embd, cfg.hidden, num_layers=cfg.n_layer, batch_first=True,
                            dropout=cfg.dropout if cfg.n_layer > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden, vocab_size)

    def run(self, idx: torch.Tensor, state=None):
        x = self.emb(idx)                 # (B, T, n_embd)
        h, state = self.lstm(x, state)    # (B, T, hidden), ((L, B, hidden), (L, B, hidden))
        return self.head(self.drop(h)), state  # (B, T, V)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.run(idx)[0]

    def decode(self, idx: torch.Tensor, state=None):
        logits, state = self.run(idx, state)
        return logits[:, -1], state


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position t sees positions <= t only."""

    def __init__(self, cfg: CharGPTConfig):
        super().__init__()
        self.n_head, self.n_embd = cfg.n_head, cfg.n_embd
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)  # Q, K, V in one matmul
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        # Dropout acts on what each block adds to the residual stream (and on
        # the embeddings and the MLP), not on the attention weights: on the
        # CPU, dropout inside scaled_dot_product_attention leaves its fused
        # kernel for the unfused maths and a step of the Standard preset takes
        # 1.5x as long (111 vs 82 ms, measured), for a regulariser the
        # residual dropout already provides.
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, need_weights: bool = False):
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)      # 3 x (B, T, C)
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)        # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)        # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)        # (B, nh, T, hs)
        att = None
        if need_weights:
            # the formula spelled out, for the heat map: softmax(QK^T / sqrt(d_k)) with the future masked
            att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)      # (B, nh, T, T)
            future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
            att = F.softmax(att.masked_fill(future, float("-inf")), dim=-1)
            y = att @ v                                          # (B, nh, T, hs)
        else:
            # the same maths in one fused kernel (flash / memory-efficient attention)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)         # (B, T, C): heads side by side
        return self.resid_dropout(self.c_proj(y)), att


class MLP(nn.Module):
    def __init__(self, cfg: CharGPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)    # (B, T, 4C)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)  # (B, T, C)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, cfg: CharGPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, need_weights: bool = False):
        a, att = self.attn(self.ln_1(x), need_weights)
        x = x + a
        x = x + self.mlp(self.ln_2(x))
        return x, att


class CharGPT(nn.Module):
    """A small GPT over characters (after nanoGPT): token + position embeddings,
    ``n_layer`` pre-norm blocks, a final LayerNorm and a read-out that shares
    its weights with the token embedding."""

    def __init__(self, cfg: CharGPTConfig, vocab_size: int):
        super().__init__()
        if cfg.n_embd % cfg.n_head:
            raise UserError(f"the embedding size ({cfg.n_embd}) must be a multiple of the number of heads ({cfg.n_head})")
        self.block_size = cfg.block_size
        self.wte = nn.Embedding(vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.n_embd, vocab_size, bias=False)
        # Weight tying: reading a character out and embedding it are the same
        # relation seen from both sides; one matrix halves those parameters.
        self.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        # Each block adds two projections (attention, MLP) to the residual
        # stream, so its variance grows with depth; scaling these inits by
        # 1/sqrt(2 * n_layer) keeps the stream's size at initialisation
        # independent of depth (GPT-2 paper).
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, need_weights: bool = False, last_only: bool = False):
        B, T = idx.shape
        if T > self.block_size:
            raise ValueError(f"sequence of length {T} is longer than the context length {self.block_size}")
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))   # (B, T, C)
        maps = []
        for block in self.blocks:
            x, att = block(x, need_weights)            # (B, T, C); att (B, nh, T, T) when asked
            maps.append(att)
        x = self.ln_f(x)                               # (B, T, C)
        if last_only:
            x = x[:, -1:]                              # (B, 1, C): sampling needs the last position only
        logits = self.lm_head(x)                       # (B, T, V)
        return (logits, maps) if need_weights else logits

    def decode(self, idx: torch.Tensor, state=None):
        # No key/value cache: re-read the context, cropped to the last
        # block_size characters (the longest the position table covers).
        ctx = idx if state is None else torch.cat([state, idx], dim=1)
        ctx = ctx[:, -self.block_size:]
        return self.forward(ctx, last_only=True)[:, -1], ctx

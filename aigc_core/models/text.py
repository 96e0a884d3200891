"""Character-level language models: ``bigram``, ``char_lstm`` and ``char_gpt``.

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
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn
from torch.nn import functional as F

from ..config import param
from ..data.base import TextData
from ..data.text import split
from ..data.vocab import EOS, PAD, SOS, CharVocab, _show_char, max_vocab_param
from ..errors import UserError
from ..registry import ModelSpec, register
from ..train.base import Trainer

IGNORE = -1  # target id of padded positions: F.cross_entropy skips it

#: validation text scored by :meth:`CharTrainer.evaluate` (characters); the
#: whole validation split of ``pydoc`` fits.
EVAL_MAX_TOKENS = 65_536
EVAL_CHUNK = 64  # windows per forward pass while evaluating (bounds memory)
#: the film strip samples a little below temperature 1, the same for every
#: frame, so early frames are not pure noise and frames stay comparable.
FILM_TEMPERATURE = 0.8
FILM_LENGTH = 200
FILM_ITEMS = 8
FILM_PROMPT_CHARS = 32
TOP_PROBS = 10
MAX_SAMPLE_LENGTH = 20_000
MAX_SAMPLES = 1_000


def mark_copies(items: list[str], train_text: str) -> list[bool]:
    """For each generated item, whether it is a line of the training text verbatim
    (a name the model memorised rather than invented)."""
    seen = set(train_text.split("\n"))
    return [item in seen for item in items]


# ---- configs -----------------------------------------------------------------
# Fields every text model shares; each call makes a new dataclass field.

def _batch_size(default: int):
    return param(default, "Batch size", "Text windows (or items, in line mode) per training step.", min=1, max=1024, step=1)


def _block_size(default: int):
    return param(default, "Context length (characters)",
                 "The longest stretch of text one training window holds. A GPT can look back at most this far; "
                 "in line mode longer items are cut to it.", min=4, max=1024, step=8)


def _lr(default: float):
    return param(default, "Learning rate", "Peak step size of AdamW.", min=1e-5, max=1.0, log=True)


def _warmup(default: int):
    return param(default, "Warm-up steps", "The learning rate rises linearly from 0 over these first steps.",
                 min=0, max=100_000, step=10, advanced=True)


def _decay(default: int):
    return param(default, "Decay steps",
                 "The learning rate follows a cosine from its peak down to a tenth of it over this many steps "
                 "(set it to the run's training steps), then stays there. 0 = no decay.",
                 min=0, max=10_000_000, step=100, advanced=True)


def _weight_decay(default: float):
    return param(default, "Weight decay", "AdamW's pull of weight matrices towards zero (biases and norms are exempt).",
                 min=0.0, max=1.0, step=0.01, advanced=True)


def _grad_clip(default: float):
    return param(default, "Gradient clip", "Largest allowed gradient norm per step (0 = off); guards against spikes.",
                 min=0.0, max=100.0, step=0.1, advanced=True)


def _dropout(default: float):
    return param(default, "Dropout", "Fraction of activations zeroed during training; helps against memorising a "
                 "small corpus, slows learning on a large one.", min=0.0, max=0.9, step=0.05)


@dataclass
class BigramConfig:
    batch_size: int = _batch_size(64)
    block_size: int = _block_size(128)
    lr: float = _lr(0.05)
    warmup_steps: int = _warmup(0)
    lr_decay_steps: int = _decay(3000)
    weight_decay: float = _weight_decay(0.0)
    grad_clip: float = _grad_clip(0.0)
    max_vocab: int = max_vocab_param()


@dataclass
class CharLSTMConfig:
    n_embd: int = param(64, "Embedding size", "Length of the vector each character is turned into.", min=4, max=1024, step=8)
    hidden: int = param(256, "LSTM width", "Size of the recurrent state: everything the model remembers about the past.",
                        min=8, max=4096, step=32)
    n_layer: int = param(2, "LSTM layers", "Stacked LSTM layers; each reads the one below.", min=1, max=8, step=1)
    dropout: float = _dropout(0.0)
    batch_size: int = _batch_size(32)
    block_size: int = _block_size(128)
    lr: float = _lr(3e-3)
    warmup_steps: int = _warmup(50)
    lr_decay_steps: int = _decay(1500)
    weight_decay: float = _weight_decay(0.0)
    grad_clip: float = _grad_clip(1.0)
    max_vocab: int = max_vocab_param()


@dataclass
class CharGPTConfig:
    n_layer: int = param(3, "Layers", "Transformer blocks (attention + MLP) stacked.", min=1, max=24, step=1)
    n_head: int = param(4, "Attention heads", "Heads per layer; each attends to the past in its own way. "
                        "Must divide the embedding size.", min=1, max=32, step=1)
    n_embd: int = param(96, "Embedding size", "Width of the residual stream (a multiple of the number of heads).",
                        min=8, max=2048, step=8)
    dropout: float = _dropout(0.0)
    bias: bool = param(False, "Biases", "Biases in linear layers and LayerNorms (usually a little slower, no better).",
                       advanced=True)
    batch_size: int = _batch_size(16)
    block_size: int = _block_size(128)
    lr: float = _lr(5e-3)
    warmup_steps: int = _warmup(100)
    lr_decay_steps: int = _decay(3000)
    weight_decay: float = _weight_decay(0.1)
    beta2: float = param(0.99, "Adam beta2", "Averaging of squared gradients; 0.99 reacts faster than 0.999 on "
                         "small batches.", min=0.5, max=0.9999, step=0.001, advanced=True)
    grad_clip: float = _grad_clip(1.0)
    max_vocab: int = max_vocab_param()


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
        self.n_head, self.n_embd, self.dropout = cfg.n_head, cfg.n_embd, cfg.dropout
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)  # Q, K, V in one matmul
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.attn_dropout = nn.Dropout(cfg.dropout)
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
            y = self.attn_dropout(att) @ v                       # (B, nh, T, hs)
        else:
            # the same maths in one fused kernel (flash / memory-efficient attention)
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                               is_causal=True)   # (B, nh, T, hs)
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


# ---- the trainer ---------------------------------------------------------------

class CharTrainer(Trainer):
    """Trains any of the character models on a :class:`TextData`.

    The training split is encoded once into a long tensor on the device; a
    step takes ``batch_size`` random windows (stream mode) or items (line
    mode) by indexing with ``self.gen``. AdamW with a linear warm-up and a
    cosine decay (``warmup_steps``, ``lr_decay_steps``) driven by the step
    count kept in the checkpoint; a driver that trains to a time budget can
    set :attr:`budget_progress` to a callable returning the fraction of the
    budget used (0..1), and the cosine then follows it instead.
    """

    model_cls: type = nn.Module
    loss_names = {"loss": "the training loss (cross-entropy of the next character)"}
    nan_hint = "try a lower learning rate or a gradient clip"

    def __init__(self, cfg, data: TextData, device: torch.device, seed: int, autocast: torch.dtype | None = None):
        super().__init__(cfg, data, device, seed, autocast)
        if not isinstance(data, TextData):
            raise UserError(f"{type(self).__name__} trains on text; {getattr(data, 'name', 'this data set')} is not text")
        self.mode = data.mode
        self.train_text, self.val_text = split(data)
        if len(self.train_text) < 2:
            raise UserError(f"{data.name} is too short to train on; it needs more text")
        self.vocab = CharVocab.from_text(data.text, data.mode, getattr(cfg, "max_vocab", None))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = self.model_cls(cfg, len(self.vocab)).to(device)
        self.nets = {"model": self.model}
        self.optims = {"model": self._optimizer()}
        self.step_count = 0
        self.budget_progress: Callable[[], float] | None = None
        self._prepare_data()

    # ---- data ---------------------------------------------------------------------
    def _prepare_data(self) -> None:
        """Encode both splits once, onto the device, with the current vocabulary."""
        self._train_x, self._train_y = self._encode(self.train_text)
        val_x, val_y = self._encode(self.val_text or self.train_text)
        self._val_x, self._val_y = self._eval_windows(val_x, val_y)
        # stream: the window length; lines: the padded item width (minus one)
        self._window = (self._train_x.shape[1] if self._train_y is not None
                        else min(self.cfg.block_size, len(self._train_x) - 1))
        # For text, one training example is one predicted character, so the
        # loop's samples/s reads as characters per second.
        self.tokens_per_step = self.cfg.batch_size * self._window
        self.batch_size = self.tokens_per_step

    def _encode(self, text: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Stream: ids (N,), targets None. Lines: inputs and targets (n_items, W)."""
        if self.mode == "stream":
            return torch.tensor(self._ids(text), dtype=torch.long, device=self.device), None
        sos, eos, pad = self.vocab.id(SOS), self.vocab.id(EOS), self.vocab.id(PAD)
        items = [line for line in text.split("\n") if line]
        width = min(max(len(it) for it in items) + 2, self.cfg.block_size + 1)
        rows = torch.full((len(items), width), pad, dtype=torch.long)
        for r, item in enumerate(items):
            ids = ([sos] + self._ids(item) + [eos])[:width]
            rows[r, :len(ids)] = torch.tensor(ids)
        targets = rows[:, 1:].clone()
        targets[targets == pad] = IGNORE
        return rows[:, :-1].contiguous().to(self.device), targets.to(self.device)

    def _ids(self, text: str) -> list[int]:
        try:
            return [self.vocab.index[ch] for ch in text]
        except KeyError as exc:
            raise UserError(f"the data set {self.data.name!r} now has a character ({_show_char(exc.args[0])}) "
                            "this run's model does not know; was it replaced after the run started?") from None

    def _eval_windows(self, x: torch.Tensor, y: torch.Tensor | None):
        """A fixed set of validation windows (no randomness: the same every call)."""
        if y is not None:  # lines: every validation item, up to the budget
            n = max(1, min(len(x), EVAL_MAX_TOKENS // x.shape[1]))
            return x[:n], y[:n]
        T = min(self.cfg.block_size, len(x) - 1)
        n = max(1, min(math.ceil((len(x) - 1) / T), EVAL_MAX_TOKENS // T))
        starts = torch.linspace(0, len(x) - 1 - T, n, device=x.device).long()
        idx = starts[:, None] + torch.arange(T, device=x.device)   # (n, T)
        return x[idx], x[idx + 1]

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        B = self.cfg.batch_size
        if self._train_y is not None:
            rows = torch.randint(len(self._train_x), (B,), generator=self.gen, device=self.device)
            return self._train_x[rows], self._train_y[rows]
        T = self._window
        starts = torch.randint(len(self._train_x) - T, (B,), generator=self.gen, device=self.device)
        idx = starts[:, None] + torch.arange(T, device=self.device)  # (B, T)
        return self._train_x[idx], self._train_x[idx + 1]

    # ---- optimisation -------------------------------------------------------------
    def _optimizer(self) -> torch.optim.Optimizer:
        # weight decay on matrices (and embeddings) only, never on biases and norms
        params = [p for p in self.model.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        groups = [dict(params=decay, weight_decay=self.cfg.weight_decay), dict(params=no_decay, weight_decay=0.0)]
        beta2 = getattr(self.cfg, "beta2", 0.99)
        return torch.optim.AdamW([g for g in groups if g["params"]], lr=self.cfg.lr, betas=(0.9, beta2))

    def lr_now(self) -> float:
        """Linear warm-up to ``lr``, then a cosine down to ``lr / 10``."""
        cfg = self.cfg
        if cfg.warmup_steps and self.step_count < cfg.warmup_steps:
            return cfg.lr * (self.step_count + 1) / cfg.warmup_steps
        if self.budget_progress is not None:
            progress = self.budget_progress()
        elif cfg.lr_decay_steps:
            progress = (self.step_count - cfg.warmup_steps) / max(1, cfg.lr_decay_steps - cfg.warmup_steps)
        else:
            return cfg.lr
        progress = min(1.0, max(0.0, progress))
        min_lr = cfg.lr / 10
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - min_lr)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """Cross-entropy of the next character, padded positions skipped."""
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                               ignore_index=IGNORE, reduction=reduction)

    def step(self) -> dict[str, torch.Tensor]:
        lr = self.lr_now()
        opt = self.optims["model"]
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = self._batch()
        with self.autocast_ctx():
            logits = self.nets["model"](x)            # (B, T, V)
        loss = self.loss(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        opt.step()
        self.step_count += 1
        return {"loss": loss.detach(), "lr": torch.tensor(lr, device=self.device)}

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation loss (nats per character), bits per character and
        perplexity on a fixed set of windows from the held-out last 10%."""
        was_training = self.model.training
        self.model.eval()
        total, count = torch.zeros((), device=self.device), 0
        try:
            for i in range(0, len(self._val_x), EVAL_CHUNK):
                x, y = self._val_x[i:i + EVAL_CHUNK], self._val_y[i:i + EVAL_CHUNK]
                with self.autocast_ctx():
                    logits = self.model(x)
                total += self.loss(logits, y, reduction="sum")
                count += int((y != IGNORE).sum())
        finally:
            self.model.train(was_training)
        val_loss = float(total) / max(1, count)
        return dict(val_loss=val_loss, val_bpc=val_loss / math.log(2), val_perplexity=math.exp(min(val_loss, 50.0)))

    # ---- checkpoints ----------------------------------------------------------------
    def extra_state(self) -> dict:
        return {"vocab": list(self.vocab.tokens), "mode": self.mode, "step_count": self.step_count}

    def load_extra_state(self, extra: dict) -> None:
        if extra.get("vocab"):
            if len(extra["vocab"]) != len(self.vocab):
                raise UserError("this checkpoint was trained on a different character set than the data set has now")
            if list(extra["vocab"]) != self.vocab.tokens:
                # the checkpoint's own vocabulary decides what its ids mean
                self.vocab = CharVocab(list(extra["vocab"]), extra.get("mode", self.mode))
                self._prepare_data()
        self.step_count = int(extra.get("step_count", self.step_count))

    # ---- generation -----------------------------------------------------------------
    def film_strip(self) -> str:
        """The model continuing one fixed prompt with a fixed seed (stream), or
        a few items from ``<start>`` (lines): read it learning to spell."""
        if self.mode == "lines":
            return "\n".join(self.sample(FILM_ITEMS, self.seed, temperature=FILM_TEMPERATURE, length=self._window))
        return self.sample(1, self.seed, prompt=self.film_prompt(), length=FILM_LENGTH, temperature=FILM_TEMPERATURE)[0]

    def film_prompt(self) -> str:
        """A fixed slice of the training text: the start of the first line of
        prose after its middle, cut at a word boundary."""
        text = self.train_text
        pos = text.find("\n", len(text) // 2) + 1
        while 0 < pos < len(text):
            end = text.find("\n", pos)
            line = text[pos:end if end >= 0 else len(text)]
            if len(line.split()) >= 4 and line[:1].isalpha():
                cut = line[:FILM_PROMPT_CHARS]
                return cut[:cut.rfind(" ") + 1] if " " in cut else cut
            pos = end + 1 if end >= 0 else -1
        return text[:FILM_PROMPT_CHARS]

    def _context(self, prompt: str) -> list[int]:
        """Ids the model conditions on: ``<start>`` + prompt in line mode; the
        prompt (or one line break, when empty) in stream mode."""
        ids = self.vocab.encode(prompt or "")
        if self.mode == "lines":
            return [self.vocab.id(SOS)] + ids
        if ids:
            return ids
        start = "\n" if "\n" in self.vocab.index else self.train_text[0]
        return [self.vocab.index[start]]

    def _forbidden(self) -> list[int]:
        # <pad> and <start> are never a next character
        return [self.vocab.id(PAD), self.vocab.id(SOS)] if self.mode == "lines" else []

    @staticmethod
    def _knobs(length=200, temperature=1.0, top_k=0, top_p=1.0, greedy=False, **unknown) -> dict:
        if unknown:
            raise UserError(f"unknown sampling setting(s) {', '.join(sorted(unknown))}; "
                            "text models take prompt, length, temperature, top_k, top_p, greedy")
        try:
            length, temperature, top_k, top_p = int(length), float(temperature), int(top_k), float(top_p)
        except (TypeError, ValueError):
            raise UserError("length and top_k must be whole numbers, temperature and top_p numbers") from None
        if isinstance(greedy, str):
            greedy = greedy.strip().lower() in {"1", "true", "yes", "on"}
        if not 1 <= length <= MAX_SAMPLE_LENGTH:
            raise UserError(f"length must be between 1 and {MAX_SAMPLE_LENGTH} characters; got {length}")
        if not temperature >= 0 or not math.isfinite(temperature):
            raise UserError(f"temperature must be 0 or more (0 = always the most likely character); got {temperature}")
        if top_k < 0:
            raise UserError(f"top_k must be 0 (off) or a positive number of characters; got {top_k}")
        if not 0 < top_p <= 1:
            raise UserError(f"top_p must be above 0 and at most 1 (1 = off); got {top_p}")
        return dict(length=length, temperature=temperature, top_k=top_k, top_p=top_p, greedy=bool(greedy))

    def _pick(self, logits: torch.Tensor, u: torch.Tensor, temperature: float, top_k: int, top_p: float,
              greedy: bool) -> torch.Tensor:
        """One next id per row from last-position logits (n, V), drawn by
        inverting the cumulative distribution at the uniform numbers ``u`` (n,)."""
        logits = self._filtered(logits, temperature, top_k, top_p)
        if greedy or temperature == 0:
            return logits.argmax(dim=-1)
        cdf = F.softmax(logits, dim=-1).cumsum(dim=-1)                    # (n, V)
        # right=True skips characters of probability 0 (flat stretches of the cdf)
        return torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True)[:, 0].clamp_(max=cdf.shape[-1] - 1)

    def _filtered(self, logits: torch.Tensor, temperature: float, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
        """Logits after the forbidden ids, temperature, top-k and top-p."""
        logits = logits.float().clone()
        forbid = self._forbidden()
        if forbid:
            logits[:, forbid] = float("-inf")
        if temperature > 0:
            logits = logits / temperature
        if top_k > 0:
            kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]   # (n, 1)
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if top_p < 1.0:
            # nucleus: keep the most likely characters until their probabilities reach top_p
            probs, order = F.softmax(logits, dim=-1).sort(dim=-1, descending=True)
            before = probs.cumsum(dim=-1) - probs          # mass of the more likely characters
            drop_sorted = before >= top_p                  # the first character is always kept
            drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
            logits = logits.masked_fill(drop, float("-inf"))
        return logits

    @torch.no_grad()
    def _generate(self, n: int, seed: int, prompt: str, length: int, temperature: float, top_k: int,
                  top_p: float, greedy: bool) -> Iterator[torch.Tensor]:
        """Yields the next ids (n,) one position at a time; in line mode stops
        once every row has produced ``<end>``."""
        was_training = self.model.training
        self.model.eval()
        gen = torch.Generator(device=self.device)
        gen.manual_seed(int(seed))
        # Row i uses the i-th run of `length` numbers, so the first text of a
        # batch is the text one gets asking for a single sample.
        uniform = torch.rand(n, length, generator=gen, device=self.device)   # (n, length)
        ctx = torch.tensor([self._context(prompt)] * n, dtype=torch.long, device=self.device)
        eos = self.vocab.id(EOS) if self.mode == "lines" else None
        done = torch.zeros(n, dtype=torch.bool, device=self.device)
        try:
            with self.autocast_ctx():
                logits, state = self.model.decode(ctx, None)
            for t in range(length):
                nxt = self._pick(logits, uniform[:, t], temperature, top_k, top_p, greedy)   # (n,)
                yield nxt
                if eos is not None:
                    done |= nxt == eos
                    if bool(done.all()):
                        break
                with self.autocast_ctx():
                    logits, state = self.model.decode(nxt[:, None], state)
        finally:
            self.model.train(was_training)

    def sample(self, n: int = 4, seed: int = 0, prompt: str = "", length: int = 200, temperature: float = 1.0,
               top_k: int = 0, top_p: float = 1.0, greedy: bool = False, **unknown) -> list[str]:
        """``n`` texts, each starting with ``prompt``: ``length`` new characters
        (stream), or one whole item up to ``<end>`` (lines; ``length`` caps
        it). ``temperature`` divides the logits (0 = greedy), ``top_k`` keeps
        the k likeliest characters (0 = all), ``top_p`` the smallest set whose
        probability reaches p (1 = all), ``greedy`` always takes the likeliest.
        The same seed gives the same texts."""
        knobs = self._knobs(length, temperature, top_k, top_p, greedy, **unknown)
        n = int(n)
        if not 1 <= n <= MAX_SAMPLES:
            raise UserError(f"ask for between 1 and {MAX_SAMPLES} samples; got {n}")
        prompt = prompt or ""
        steps = list(self._generate(n, seed, prompt, **knobs))
        ids = torch.stack(steps, dim=1).cpu().tolist() if steps else [[] for _ in range(n)]
        out = []
        for row in ids:
            if self.mode == "lines" and self.vocab.id(EOS) in row:
                row = row[:row.index(self.vocab.id(EOS))]
            out.append(prompt + self.vocab.decode(row))
        return out

    def stream(self, prompt: str = "", length: int = 200, seed: int = 0, **knobs) -> Iterator[str]:
        """The characters of one sample as they are generated (the prompt
        itself is not repeated); the same as ``sample(1, seed, prompt, ...)``."""
        knobs = self._knobs(length, **knobs)
        eos = self.vocab.id(EOS) if self.mode == "lines" else None
        for nxt in self._generate(1, seed, prompt or "", **knobs):
            i = int(nxt[0])
            if i == eos:
                return
            yield self.vocab.tokens[i]

    @torch.no_grad()
    def next_char_probs(self, prompt: str = "", temperature: float = 1.0) -> list[tuple[str, float]]:
        """The ten likeliest next characters after ``prompt`` and their
        probabilities after temperature (``<end>`` closes an item in line mode)."""
        temperature = self._knobs(temperature=temperature)["temperature"]
        was_training = self.model.training
        self.model.eval()
        try:
            ctx = torch.tensor([self._context(prompt or "")], dtype=torch.long, device=self.device)
            logits, _ = self.model.decode(ctx, None)
        finally:
            self.model.train(was_training)
        logits = self._filtered(logits, temperature)
        if temperature == 0:
            probs = F.one_hot(logits.argmax(-1), logits.shape[-1]).float()
        else:
            probs = F.softmax(logits, dim=-1)
        top = torch.topk(probs[0], min(TOP_PROBS, probs.shape[-1]))
        return [(self.vocab.tokens[i], float(p)) for p, i in zip(top.values.tolist(), top.indices.tolist())]

    def context_labels(self, prompt: str = "") -> list[str]:
        """The tokens the model reads for ``prompt`` (axis labels of the attention map)."""
        ids = self._context(prompt or "")[-getattr(self.cfg, "block_size", 10**9):]
        return [self.vocab.tokens[i] for i in ids]

    def attention_maps(self, prompt: str = "") -> torch.Tensor:
        raise UserError(f"only char_gpt has attention to show; this run's model is {type(self.model).__name__}")

    def mark_copies(self, items: list[str]) -> list[bool]:
        """Which items are lines of this model's training text verbatim."""
        return mark_copies(items, self.train_text)


class BigramTrainer(CharTrainer):
    model_cls = BigramLM


class CharLSTMTrainer(CharTrainer):
    model_cls = CharLSTM


class CharGPTTrainer(CharTrainer):
    model_cls = CharGPT

    @torch.no_grad()
    def attention_maps(self, prompt: str = "") -> torch.Tensor:
        """Attention weights for ``prompt`` (the last ``block_size`` tokens of
        its context): a float tensor (layers, heads, T, T) on the CPU; row t
        is how position t spreads its attention over positions 0..t."""
        was_training = self.model.training
        self.model.eval()
        try:
            ids = self._context(prompt or "")[-self.cfg.block_size:]
            ctx = torch.tensor([ids], dtype=torch.long, device=self.device)
            _, maps = self.model(ctx, need_weights=True)
        finally:
            self.model.train(was_training)
        return torch.stack([m[0] for m in maps]).float().cpu()   # (layers, heads, T, T)


# ---- registration ------------------------------------------------------------------

def _fits(summary: dict) -> str | None:
    # a summary may leave out what is costly to count (a built-in not yet built)
    if summary.get("kind", "text") != "text":
        return "character models train on text"
    if summary.get("count") is not None and summary["count"] < 100:
        return "the text is too short (fewer than 100 characters)"
    return None


def _preset(steps: int, model: dict, sample_every: int, log_every: int = 25) -> dict:
    return dict(model=dict(model, lr_decay_steps=steps),
                train=dict(steps=steps, sample_every=sample_every, log_every=log_every, checkpoint_every=steps))


register(ModelSpec(
    name="bigram",
    title="Bigram (counting baseline)",
    family="text",
    data_kind="text",
    description="Predicts the next character from the current one only: a table of next-character "
                "probabilities. The baseline that shows what a longer context buys.",
    config_cls=BigramConfig,
    trainer_cls=BigramTrainer,
    presets={
        "Quick": _preset(1000, dict(batch_size=32, block_size=64, lr=0.05), sample_every=200),
        "Standard": _preset(3000, dict(batch_size=64, block_size=128, lr=0.05), sample_every=500),
    },
    fits=_fits,
))

register(ModelSpec(
    name="char_lstm",
    title="Character LSTM",
    family="text",
    data_kind="text",
    description="An embedding and stacked LSTM layers read the text one character at a time and keep a "
                "memory of everything so far.",
    config_cls=CharLSTMConfig,
    trainer_cls=CharLSTMTrainer,
    presets={
        # about 20 ms a step on a 2-core CPU: Quick trains in about half a minute
        "Quick": _preset(1200, dict(n_embd=48, hidden=192, n_layer=1, batch_size=32, block_size=64, lr=5e-3,
                                    warmup_steps=50), sample_every=200),
        "Standard": _preset(1500, dict(n_embd=64, hidden=256, n_layer=2, batch_size=32, block_size=128, lr=3e-3,
                                       warmup_steps=50), sample_every=250),
    },
    fits=_fits,
))

register(ModelSpec(
    name="char_gpt",
    title="Character GPT",
    family="text",
    data_kind="text",
    description="A small GPT: causal multi-head self-attention lets every character look back at the "
                "ones before it, softmax(QK^T / sqrt(d_k)) V, in pre-norm transformer blocks.",
    config_cls=CharGPTConfig,
    trainer_cls=CharGPTTrainer,
    presets={
        "Quick": _preset(1200, dict(n_layer=2, n_head=4, n_embd=96, block_size=64, batch_size=16, lr=5e-3,
                                    warmup_steps=50, dropout=0.0), sample_every=200),
        # Tuned on a 2-core CPU against the small-CPU recipe (4 layers x 128,
        # context 64, batch 12, lr 1e-3): with the same wall time a shallower,
        # narrower model that runs faster, sees twice the characters, reads a
        # longer context and takes bigger steps reaches a clearly lower
        # validation loss (see `python -m aigc_core bench --only text`).
        "Standard": _preset(3000, dict(n_layer=3, n_head=4, n_embd=96, block_size=128, batch_size=16, lr=5e-3,
                                       warmup_steps=100, dropout=0.0, weight_decay=0.1, beta2=0.99, grad_clip=1.0),
                            sample_every=250),
    },
    fits=_fits,
))

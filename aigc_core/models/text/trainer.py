"""Training and sampling the character models (:class:`CharTrainer`)."""

from __future__ import annotations

import math
from typing import Callable, Iterator

import torch
from torch import nn
from torch.nn import functional as F

from ...data.base import TextData
from ...data.text import split
from ...data.vocab import EOS, OTHER, PAD, SOS, CharVocab, _show_char
from ...errors import UserError
from ...metrics.text import mark_copies
from ...train.base import Trainer
from ...train.utils import StepFunctionLR, warmup_cosine
from .config import MAX_SAMPLE_LENGTH
from .networks import BigramLM, CharGPT, CharLSTM

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
MAX_SAMPLES = 1_000


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
        self.schedule = StepFunctionLR(self.optims["model"], self.lr_at)
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

    def lr_at(self, step: int) -> float:
        """Linear warm-up to ``lr``, then a cosine down to ``lr_floor x lr``
        (a tenth where the config has no floor; over
        ``lr_decay_steps``, or over the time budget when :attr:`budget_progress`
        is set): :func:`aigc_core.train.utils.warmup_cosine`."""
        cfg = self.cfg
        progress = self.budget_progress() if self.budget_progress is not None else None
        return warmup_cosine(step, cfg.lr, cfg.warmup_steps, cfg.lr_decay_steps, floor=getattr(cfg, "lr_floor", 0.1),
                             progress=progress)

    def lr_now(self) -> float:
        """The learning rate of the next step."""
        return self.lr_at(self.step_count)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """Cross-entropy of the next character, padded positions skipped."""
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                               ignore_index=IGNORE, reduction=reduction)

    def step(self) -> dict[str, torch.Tensor]:
        opt = self.optims["model"]
        lr = opt.param_groups[0]["lr"]  # set by the schedule after the previous step
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
        self.schedule.step()
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

    def load_state(self, state: dict, *, weights_only: bool = False) -> None:
        # the vocabulary first: the network's input and output sizes follow it
        extra = state.get("extra") or {}
        if extra.get("vocab") and list(extra["vocab"]) != self.vocab.tokens:
            self.adopt_vocab(list(extra["vocab"]), extra.get("mode", self.mode))
        super().load_state(state, weights_only=weights_only)

    def adopt_vocab(self, tokens: list[str], mode: str) -> None:
        """Use a checkpoint's vocabulary (its ids are what the weights mean),
        also when this run's data set has fewer characters, as a fine-tune on
        a smaller set does. Characters the checkpoint never saw become its
        "other" character when it has one (it kept only its most frequent
        characters); without one they are refused, and so is a data set of the
        other mode (running text vs lines)."""
        vocab = CharVocab(tokens, mode)
        if mode != self.mode:
            had = "running text" if mode == "stream" else "a list of lines"
            raise UserError(f"the checkpoint learnt {had}, but {self.data.name!r} is "
                            f"{'a list of lines' if self.mode == 'lines' else 'running text'}; "
                            "fine-tune on a data set of the same kind")
        missing = vocab.unknown(self.data.text.replace("\n", "") if mode == "lines" else self.data.text)
        if missing and OTHER in vocab.index:
            vocab, missing = CharVocab(tokens, mode, folded=missing), []
        if missing:
            shown = ", ".join(_show_char(ch) for ch in missing[:20])
            raise UserError(f"{self.data.name!r} has {len(missing)} character(s) the checkpoint's model never saw: "
                            f"{shown}{' ...' if len(missing) > 20 else ''}. Remove or replace them in the data set "
                            "(its network has one input and one output per known character)")
        resized = len(vocab) != len(self.vocab)
        self.vocab = vocab
        if resized:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                self.model = self.model_cls(self.cfg, len(self.vocab)).to(self.device)
            self.nets = {"model": self.model}
            self.optims = {"model": self._optimizer()}
            self.schedule = StepFunctionLR(self.optims["model"], self.lr_at)
            self.schedule.go_to(self.step_count)
        self._prepare_data()

    def load_extra_state(self, extra: dict) -> None:
        if extra.get("vocab") and list(extra["vocab"]) != self.vocab.tokens:
            self.adopt_vocab(list(extra["vocab"]), extra.get("mode", self.mode))
        self.step_count = int(extra.get("step_count", self.step_count))
        self.schedule.go_to(self.step_count)

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

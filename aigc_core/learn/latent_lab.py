"""The VAE latent lab's engine: a VAE on the glyphs whose code z has two
numbers, so its latent space is a plane a learner can look at and click.

Three of them (beta = 0.5, 1 and 4) ship with the app in
``starters/latent/`` (:func:`make_latent_starters` retrains them); any other
beta is trained on demand for ``seconds`` and cached in the workspace
(``$AIGC_HOME/learn/``).

The network is a small fully connected VAE written here, so the lab does not
depend on how the studio's model modules are organised.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError

LATENT = 2
HIDDEN = 256
SIDE = 28
SHIPPED_BETAS = (0.5, 1.0, 4.0)
STARTER_DIR = Path(__file__).resolve().parent.parent.parent / "starters" / "latent"
HELD_OUT = 2000  # the last images of a fixed permutation are never trained on
PLANE = 3.0  # the latent plane shown: [-PLANE, PLANE]^2 (the prior puts 99.7% of codes inside)
_lock = threading.Lock()
_loaded: dict[str, "LatentVAE"] = {}


class LatentVAE(nn.Module):
    def __init__(self, hidden: int = HIDDEN):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Flatten(),                                 # (B, 784)
            nn.Linear(SIDE * SIDE, hidden), nn.ReLU(),    # (B, hidden)
            nn.Linear(hidden, hidden), nn.ReLU(),         # (B, hidden)
            nn.Linear(hidden, 2 * LATENT),                # (B, 4): mu and log sigma^2
        )
        self.decoder = nn.Sequential(
            nn.Linear(LATENT, hidden), nn.ReLU(),         # (B, hidden)
            nn.Linear(hidden, hidden), nn.ReLU(),         # (B, hidden)
            nn.Linear(hidden, SIDE * SIDE),               # (B, 784) logits
        )
        self.beta = 1.0

    def encode(self, x01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x01).chunk(2, dim=1)
        return mu, logvar.clamp(-12, 8)

    def loss(self, x01: torch.Tensor, gen: torch.Generator | None = None) -> tuple[torch.Tensor, float, float]:
        """beta-VAE loss per image: BCE(x, decoder(z)) + beta * KL(q(z|x) || N(0, I)),
        z = mu + sigma * eps (the reparameterisation), KL = -1/2 sum(1 + log s^2 - mu^2 - s^2)."""
        mu, logvar = self.encode(x01)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen)
        logits = self.decoder(z)
        recon = F.binary_cross_entropy_with_logits(logits, x01.flatten(1), reduction="sum") / len(x01)
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
        return recon + self.beta * kl, float(recon.detach()), float(kl.detach())

    # ---- what the lab shows -------------------------------------------------------------
    @torch.no_grad()
    def decode(self, z: np.ndarray | torch.Tensor) -> np.ndarray:
        """Images (N, 28, 28) in [0, 1] for codes z (N, 2)."""
        z = torch.as_tensor(np.asarray(z, dtype=np.float32)).reshape(-1, LATENT)
        return torch.sigmoid(self.decoder(z)).reshape(-1, SIDE, SIDE).numpy()

    def decode_point(self, x: float, y: float) -> np.ndarray:
        return self.decode([[x, y]])[0]

    def decode_grid(self, n: int = 15, limit: float = PLANE) -> np.ndarray:
        """One image (n*28, n*28) tiling the decoder's output over an n x n grid of
        the plane; row 0 is the top (largest z2), column 0 the left (smallest z1)."""
        if not 2 <= n <= 40:
            raise UserError(f"the decoded grid has between 2 and 40 images a side; got {n}")
        axis = np.linspace(-limit, limit, n, dtype=np.float32)
        zz = np.array([[x, y] for y in axis[::-1] for x in axis], dtype=np.float32)
        tiles = self.decode(zz).reshape(n, n, SIDE, SIDE)
        return tiles.transpose(0, 2, 1, 3).reshape(n * SIDE, n * SIDE)

    def walk(self, a: tuple[float, float], b: tuple[float, float], steps: int = 10) -> np.ndarray:
        """The decoded images along the straight line from a to b: (steps, 28, 28)."""
        if not 2 <= steps <= 64:
            raise UserError(f"a walk has between 2 and 64 steps; got {steps}")
        t = np.linspace(0, 1, steps, dtype=np.float32)[:, None]
        return self.decode((1 - t) * np.asarray(a, np.float32) + t * np.asarray(b, np.float32))

    @torch.no_grad()
    def encode_held_out(self, count: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """Held-out glyphs (never trained on) encoded: (points (N, 2) = mu, digit labels (N,))."""
        images, labels = _held_out()
        images, labels = images[:count], labels[:count]
        mu, _ = self.encode(images.float().div(255.0))
        return mu.numpy(), labels.numpy()


def _glyphs():
    from ..data.catalog import load_dataset

    data = load_dataset("glyphs")
    order = torch.randperm(len(data.images), generator=torch.Generator().manual_seed(4321))
    return data.images[order], data.labels[order]


def _held_out():
    images, labels = _glyphs()
    return images[-HELD_OUT:], labels[-HELD_OUT:]


def train_latent_vae(beta: float, seconds: float = 30.0, max_steps: int = 20_000, seed: int = 0,
                     batch_size: int = 128, echo=None) -> LatentVAE:
    """A fresh 2-D VAE trained on the glyphs (minus the held-out ones) for
    ``seconds`` or ``max_steps``, whichever comes first."""
    if not 0.0 <= beta <= 20.0:
        raise UserError(f"beta must be between 0 and 20; got {beta}")
    images, _ = _glyphs()
    train = images[:-HELD_OUT]
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LatentVAE()
    model.beta = float(beta)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    start, step = time.perf_counter(), 0
    while step < max_steps and time.perf_counter() - start < seconds:
        x = train[torch.randint(len(train), (batch_size,), generator=gen)].float().div(255.0)
        loss, recon, kl = model.loss(x, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if echo and step % 500 == 0:
            echo(f"beta {beta}: step {step}, recon {recon:.1f}, kl {kl:.2f}")
    model.eval()
    model.steps_trained = step
    return model


def _key(beta: float) -> str:
    return f"beta{float(beta):g}"


def _save(model: LatentVAE, path: Path) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    # half precision: the three shipped models stay small in the repository
    tensors = {k: v.detach().half().contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata={"beta": str(model.beta), "steps": str(getattr(model, "steps_trained", 0))})
    tmp.replace(path)


def _load(path: Path) -> LatentVAE:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
        state = {k: f.get_tensor(k).float() for k in f.keys()}
    model = LatentVAE()
    model.load_state_dict(state)
    model.beta = float(meta.get("beta", 1.0))
    model.eval()
    return model


def _cached_path(beta: float) -> Path:
    from ..paths import aigc_home

    return aigc_home() / "learn" / f"latent_vae_{_key(beta)}.safetensors"


def latent_vae(beta: float = 1.0, seconds: float = 30.0) -> LatentVAE:
    """The 2-D VAE for ``beta``: shipped, cached in the workspace, or trained now
    for ``seconds`` (and cached). Safe to call from several page threads."""
    key = _key(beta)
    with _lock:
        if key in _loaded:
            return _loaded[key]
        for path in (STARTER_DIR / f"latent_vae_{key}.safetensors", _cached_path(beta)):
            if path.exists():
                _loaded[key] = _load(path)
                return _loaded[key]
    model = train_latent_vae(beta, seconds=seconds)
    _save(model, _cached_path(beta))
    with _lock:
        _loaded[key] = _load(_cached_path(beta))  # the same half-precision weights a later load sees
        return _loaded[key]


def make_latent_starters(out: Path = STARTER_DIR, steps: int = 4000, echo=print) -> list[Path]:
    """Train and write the shipped beta = 0.5, 1 and 4 models (by steps, not
    time, so a busy machine makes the same models; about 30 s each on a quiet CPU)."""
    paths = []
    for beta in SHIPPED_BETAS:
        model = train_latent_vae(beta, seconds=float("inf"), max_steps=steps, echo=echo)
        path = Path(out) / f"latent_vae_{_key(beta)}.safetensors"
        _save(model, path)
        echo(f"wrote {path} ({model.steps_trained} steps)")
        paths.append(path)
    return paths

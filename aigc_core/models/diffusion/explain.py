"""DDPM's explanation panel: the forward process, the objective, the two
sampling updates and how to read the curves."""

from __future__ import annotations

from ...train.explain import Panel


def ddpm_explanation(settings: dict) -> str:
    out = Panel()
    out.markdown("**What is trained.** Destroy images with noise step by step, and train a network to undo one "
                 "step; generating is undoing all of them, starting from pure noise.")
    out.markdown(f"**Forward process.** After $t$ of $T$ = {settings['timesteps']} noising steps an image $x_0$ is")
    out.latex(r"q(x_t \mid x_0) = \mathcal{N}\!\left(\sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t)\,I\right),\qquad"
              r"x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\quad \epsilon\sim\mathcal{N}(0, I)")
    out.markdown(r"where the cosine schedule $\bar\alpha_t = f(t)/f(0)$, "
                 r"$f(t) = \cos^2\!\big(\tfrac{t/T + s}{1+s}\cdot\tfrac{\pi}{2}\big)$, falls from almost 1 (the "
                 "image) to almost 0 (pure noise).")
    out.markdown(r"**Objective.** A UNet $\epsilon_\theta(x_t, t)$ guesses the noise that was added, at a random "
                 "level $t$:")
    out.latex(r"L = \mathbb{E}_{x_0,\,t,\,\epsilon}\,\big\|\epsilon - \epsilon_\theta(x_t, t)\big\|^2")
    out.markdown(r"**Sampling.** Start from $x_T \sim \mathcal{N}(0, I)$ and walk down $S$ evenly spaced levels "
                 r"$t \to s$ (the *Sampling steps* knob). Each step first estimates the clean image "
                 r"$\hat x_0 = \big(x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta(x_t, t)\big)/\sqrt{\bar\alpha_t}$ "
                 "(clipped to the pixel range).")
    out.markdown(r"*DDIM* (deterministic for $\eta = 0$), with "
                 r"$\hat\epsilon = (x_t - \sqrt{\bar\alpha_t}\,\hat x_0)/\sqrt{1-\bar\alpha_t}$:")
    out.latex(r"x_s = \sqrt{\bar\alpha_s}\,\hat x_0 + \sqrt{1-\bar\alpha_s-\sigma^2}\;\hat\epsilon + \sigma z,\qquad"
              r"\sigma = \eta\sqrt{\tfrac{1-\bar\alpha_s}{1-\bar\alpha_t}}\sqrt{1-\tfrac{\bar\alpha_t}{\bar\alpha_s}}")
    out.markdown(r"*Ancestral* (the original DDPM chain): with $\beta = 1 - \bar\alpha_t/\bar\alpha_s$, draw")
    out.latex(r"x_s = \frac{\sqrt{\bar\alpha_s}\,\beta}{1-\bar\alpha_t}\,\hat x_0 + "
              r"\frac{\sqrt{1-\beta}\,(1-\bar\alpha_s)}{1-\bar\alpha_t}\,x_t + "
              r"\sqrt{\tfrac{1-\bar\alpha_s}{1-\bar\alpha_t}\,\beta}\;z,\qquad z\sim\mathcal{N}(0, I)")
    out.markdown(f"Samples use an exponential moving average of the weights (decay {settings['ema_decay']}), "
                 "which is smoother than the latest step's.")
    out.markdown("**How to read the curves.**\n"
                 "- The loss starts near 1 (a UNet that names no noise) and falls fast, then slowly; the "
                 "samples keep improving long after the curve looks flat, so judge by the film strip.\n"
                 "- By noise level: the least noisy quarter (t1) stays highest, since a little noise on an "
                 "almost clean image is hard to tell from the image itself; the noisiest quarter (t4) is lowest.\n"
                 "- A loss that jumps up and stays there: lower the learning rate; the gradient clip cuts "
                 "single spikes.")
    return out.text()

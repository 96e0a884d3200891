"""The GANs' explanation panel: what is trained, the losses in use, how to read the curves."""

from __future__ import annotations

from ...train.explain import Panel


def gan_explanation(loss: str, points: bool) -> str:
    out = Panel()
    what = "a point in the plane" if points else "an image"
    out.markdown(f"**What is trained.** Two networks play a game. The generator G turns a random noise vector "
                f"z ~ N(0, I) into {what}; the discriminator D looks at real and generated samples and scores "
                "how real each one looks. They take turns: D learns to tell them apart, then G learns to fool "
                "the D of that moment. Neither loss has to go down: it is a contest, and the film strip is the "
                "judge of progress.")
    out.markdown("The original game:")
    out.latex(r"\min_G \max_D \; V(D,G) = \mathbb{E}_x[\log D(x)] + \mathbb{E}_z[\log(1 - D(G(z)))]")
    if loss == "wgan_gp":
        out.markdown("**Loss in use: WGAN-GP.** D is a *critic* with an unbounded score; its loss estimates the "
                    "(negative) Wasserstein distance between real and generated data, plus a gradient penalty "
                    "that keeps the critic's slope near 1 on points x̂ between real and generated samples:")
        out.latex(r"L_D = \mathbb{E}_z[D(G(z))] - \mathbb{E}_x[D(x)] + \lambda\,"
                 r"\mathbb{E}_{\hat x}\big[(\lVert\nabla_{\hat x} D(\hat x)\rVert_2 - 1)^2\big]")
        out.latex(r"L_G = -\mathbb{E}_z[D(G(z))]")
        out.markdown("**How to read the curves.**\n"
                    "- D(x) and D(G(z)) are raw scores, not probabilities; their gap E[D(x)] - E[D(G(z))] is the "
                    "distance estimate. A D loss that is negative and creeps towards 0 means the two "
                    "distributions are getting closer: that is progress.\n"
                    "- D loss falling further and further below 0 while G loss climbs: the critic is winning by "
                    "a growing margin; try a lower critic learning rate or more generator capacity.\n"
                    "- The gradient penalty should stay small (well below 1); if it grows, raise λ or lower "
                    "the learning rates.\n"
                    "- WGAN-GP is usually run with several critic steps per generator step (D steps = 5).")
    elif loss == "hinge":
        out.markdown("**Loss in use: hinge.** D gives raw scores and is asked to push real samples "
                    "above +1 and generated ones below -1; G pushes its scores up:")
        out.latex(r"L_D = \mathbb{E}_x[\max(0,\,1 - D(x))] + \mathbb{E}_z[\max(0,\,1 + D(G(z)))]")
        out.latex(r"L_G = -\mathbb{E}_z[D(G(z))]")
        out.markdown("**How to read the curves.**\n"
                    "- D(x) and D(G(z)) are raw scores. D(x) near +1 and D(G(z)) near -1 means D separates them "
                    "with a full margin.\n"
                    "- D loss near 0 while G loss climbs: the discriminator is winning and G gets little useful "
                    "signal; try a lower D learning rate or fewer D steps per G step.\n"
                    "- D loss near 2 (both scores near 0): D cannot tell real from generated; if the film strip "
                    "still looks poor, D is too weak: raise its learning rate or width.\n"
                    "- Losses that swing wildly: lower both learning rates.")
    else:
        out.markdown("**Loss in use: non-saturating.** D outputs a probability D(x) = sigmoid(score) "
                    "and minimises the binary cross-entropy; G maximises log D(G(z)) instead of minimising "
                    "log(1 - D(G(z))), which has the same goal but gives G strong gradients early on, when D "
                    "easily rejects its samples:")
        out.latex(r"L_D = -\mathbb{E}_x[\log D(x)] - \mathbb{E}_z[\log(1 - D(G(z)))]")
        out.latex(r"L_G = -\mathbb{E}_z[\log D(G(z))]")
        out.markdown("**How to read the curves.**\n"
                    "- At the ideal balance D cannot tell the two apart: D(x) = D(G(z)) = 0.5, D loss = 2 ln 2 "
                    "≈ 1.39 and G loss = ln 2 ≈ 0.69. Real runs wander around that, with D(x) a little above "
                    "D(G(z)).\n"
                    "- D loss near 0 while G loss climbs (D(x) near 1, D(G(z)) near 0): the discriminator is "
                    "winning and G gets no useful signal; try a lower D learning rate, fewer D steps per G step, "
                    "or the hinge or WGAN-GP loss.\n"
                    "- G loss very low with D(G(z)) near 1: G has found something that fools D; check the film "
                    "strip for collapse.\n"
                    "- Losses that oscillate with a growing swing: lower both learning rates (Adam beta1 = 0.5 "
                    "already damps it).")
    if points:
        out.markdown("**On points** the film strip shows the real data in grey and generated points in orange. "
                    "Good training spreads the orange over every grey blob. Orange piling onto one or two blobs "
                    "is *mode collapse*: G found a few outputs that fool D and stopped exploring; the hinge loss "
                    "(used by the presets), a wider network or a lower learning rate helps.")
    else:
        out.markdown("**Mode collapse** shows in the film strip: many noise vectors give (almost) the same image. "
                    "Try a lower learning rate, a bigger batch, or the WGAN-GP loss. NaN losses stop the run; "
                    "lower the learning rates and start again.")
    return out.text()

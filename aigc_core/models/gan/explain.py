"""The GANs' explanation panel: what is trained, the losses in use, how to read the curves."""

from __future__ import annotations

from ...train.explain import Panel


def gan_explanation(loss: str, points: bool, conditional: bool = False, augment: str = "none") -> str:
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
    elif loss == "wgan":
        out.markdown("**Loss in use: WGAN (weight clipping), the original Wasserstein GAN.** D is a *critic* with "
                    "an unbounded score; E[D(x)] - E[D(G(z))] estimates the Wasserstein distance only if D is "
                    "K-Lipschitz (its slope bounded everywhere). The original recipe enforces that crudely: after "
                    "every critic step each weight is clipped to [-c, c], and both players use RMSProp (momentum "
                    "made the clipped critic unstable):")
        out.latex(r"L_D = \mathbb{E}_z[D(G(z))] - \mathbb{E}_x[D(x)], \qquad "
                 r"w \leftarrow \operatorname{clip}(w, -c, c)\ \text{after each critic step}")
        out.latex(r"L_G = -\mathbb{E}_z[D(G(z))]")
        out.markdown("**Why the gradient penalty replaced clipping** (Gulrajani et al. 2017, *Improved Training "
                    "of Wasserstein GANs*): the clipped weights pile up at -c and +c, so the critic uses a sliver "
                    "of its capacity and learns overly simple functions; and the clip value is a knife edge: a "
                    "little too large and the gradients through a deep critic explode, a little too small and "
                    "they vanish. WGAN-GP drops the clip and instead asks for slope 1 on the lines between real "
                    "and generated samples:")
        out.latex(r"\lambda\,\mathbb{E}_{\hat x}\big[(\lVert\nabla_{\hat x} D(\hat x)\rVert_2 - 1)^2\big]")
        out.markdown("**How to read the curves.**\n"
                    "- The Wasserstein estimate should shrink as samples improve; it is noisy and slow with clipping.\n"
                    "- The largest critic weight sits at c once training starts: the clip, not the data, is "
                    "shaping the critic. Train the same run with wgan_gp beside it and compare the film strips.\n"
                    "- The defaults of the paper (learning rates 5e-5, 5 critic steps per generator step, "
                    "c = 0.01) are used unless you set others.")
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
    if conditional:
        out.markdown("**Class-conditional.** Both players are told the class y: G draws G(z, y) with y one-hot "
                    "next to z, and D is a *projection discriminator* (Miyato & Koyama 2018): its score adds the "
                    "inner product of a learned class vector e_y with its image features phi(x),")
        out.latex(r"D(x, y) = w^\top \phi(x) + e_y^\top \phi(x)")
        out.markdown("so D rejects a good image of the wrong class, and G learns to draw the class it is asked "
                    "for. The film strip has one row per class with the same noise in every row: the style stays, "
                    "the class changes.")
    if augment != "none":
        out.markdown(f"**Augmentation in use: DiffAugment ({augment}).** D sees real and generated images "
                    "through the same random transforms T, in its own step and in G's step:")
        out.latex(r"L_D = L\big(D(T(x)),\,D(T(G(z)))\big), \qquad L_G = L_G\big(D(T(G(z)))\big)")
        out.markdown("With a few hundred images D otherwise memorises them and its verdicts stop teaching G; "
                    "applying T to both keeps D from learning that augmented means real, and since T is "
                    "differentiable G still learns through it.")
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

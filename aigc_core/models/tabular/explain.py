"""The tabular models' explanation panel."""

from __future__ import annotations

from ...train.explain import Panel


def tabular_explanation(model: str) -> str:
    out = Panel()
    out.markdown("**What is trained.** Each row is first turned into numbers: every numeric column is mapped to "
                "a standard normal (quantile encoding) or to a mixture mode and an offset (gmm), every category "
                "becomes a one-hot block. Both models are *conditional*: they also get the one-hot value c of a "
                "chosen column (by default the label), drawn so that rare classes are seen often enough.")
    if model == "tab_vae":
        out.markdown("**Tabular VAE.** The encoder maps (row, c) to q(z|x, c) = N(μ, σ²), the decoder rebuilds "
                    "the row; numbers are scored as Gaussians with a learned σ, categories by cross-entropy:")
        out.latex(r"\mathrm{recon} = \sum_{\text{numbers}} \left(\frac{(x - \hat x)^2}{2\sigma^2} + \log\sigma\right)"
                 r" + \sum_{\text{categories}} \mathrm{CE}(\text{logits}, x)")
        out.latex(r"L = w \cdot \mathrm{recon} + \mathrm{KL}\big(q(z|x,c)\,\|\,\mathcal{N}(0, I)\big), \quad "
                 r"\mathrm{KL} = -\tfrac12\sum_j\big(1 + \log\sigma_j^2 - \mu_j^2 - \sigma_j^2\big)")
        out.markdown("**How to read the curves.** Reconstruction falls; KL rises at first and levels off. A KL "
                    "near 0 means the codes carry nothing and rows come out alike: raise the reconstruction "
                    "weight w. If synthetic rows are near-copies of training rows (the privacy report at the end "
                    "says), lower w. The film strip overlays real and "
                    "synthetic histograms: orange should settle onto blue.")
        return out.text()
    out.markdown("**Tabular GAN** (after CTGAN): a generator makes rows from noise and c; a critic scores *packs* "
                "of rows (packing lets it spot a generator that repeats itself), with the Wasserstein loss and a "
                "gradient penalty, and the generator is also told to produce the value it was asked for:")
    out.latex(r"L_D = \mathbb{E}[D(G(z,c),c)] - \mathbb{E}[D(x,c)] + \lambda\,\mathbb{E}_{\hat x}"
             r"\big[(\lVert\nabla D(\hat x, c)\rVert_2 - 1)^2\big]")
    out.latex(r"L_G = -\mathbb{E}[D(G(z,c),c)] + \mathrm{CE}\big(G(z,c)_{\text{condition column}},\,c\big)"
             r" + w\,L_M")
    out.markdown("With moment matching (weight w > 0; a preset fitted to a table of 20 or more columns turns it on, "
                "as the condition is then a small part of what the critic sees), each value c's generated "
                "rows are also pulled to the real rows' mean m, spread s and covariance S of the encoded columns j, k (D of them):")
    out.latex(r"L_M = \operatorname{mean}_c \sum_j \big(m_{cj}^{\text{gen}} - m_{cj}^{\text{real}}\big)^2"
             r" + \big(s_{cj}^{\text{gen}} - s_{cj}^{\text{real}}\big)^2"
             r" + \tfrac{1}{D}\sum_{j,k}\big(S_{cjk}^{\text{gen}} - S_{cjk}^{\text{real}}\big)^2")
    out.markdown("**How to read the curves.**\n"
                "- The Wasserstein estimate E[D(real)] - E[D(synthetic)] should shrink towards 0 (noisily) as "
                "synthetic rows get closer to real ones.\n"
                "- An estimate that keeps growing while G loss climbs: the critic is winning; lower its learning "
                "rate or raise the generator's.\n"
                "- The condition cross-entropy should fall near 0: generated rows carry the value asked for.\n"
                "- The gradient penalty should stay small; the moment gap (with moment matching) should fall.\n"
                "- The film strip overlays real (blue) and synthetic (orange) histograms: orange should settle "
                "onto blue. The fidelity, usefulness and privacy report at the end says how close they are.")
    return out.text()

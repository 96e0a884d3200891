"""The autoencoders' explanation panel."""

from __future__ import annotations

from ...train.explain import Panel


def autoencoder_explanation(family: str, recon_loss: str) -> str:
    out = Panel()
    recon = (r"-\sum_i \big[x_i \log p_i + (1 - x_i)\log(1 - p_i)\big]" if recon_loss == "bce"
             else r"\sum_i (p_i - x_i)^2")
    if family == "ae":
        out.markdown("**What is trained.** An encoder squeezes each image into a short code z; a decoder rebuilds "
                    "the image from the code. The only goal is a faithful rebuild, with pixel values p = "
                    "sigmoid(decoder output):")
        out.latex(r"L = " + recon)
        out.markdown("Nothing makes the codes follow a known distribution, so random codes decode to noise. To "
                    "make new images the studio fits a Gaussian to the codes of the training images (their mean "
                    "and covariance) and decodes draws from it:")
        out.latex(r"z \sim \mathcal{N}\big(\bar z,\ \Sigma_z\big), \qquad \hat x = \mathrm{sigmoid}(\mathrm{decoder}(z))")
        out.markdown("**How to read the curves.** The loss (the reconstruction error summed over pixels, per image) "
                    "falls fast and then slowly. The film strip shows real images above their reconstructions: "
                    "blurry reconstructions mean the code is too small or training too short. A held-out loss "
                    "much higher than the training loss at the end means the model memorised its training images.")
        return out.text()
    out.markdown("**What is trained.** A variational autoencoder. The encoder turns an image x into a distribution "
                "over codes, q(z|x) = N(μ(x), σ²(x)); a code is drawn with the reparameterisation trick so the "
                "draw can be differentiated, and the decoder rebuilds the image from it:")
    out.latex(r"z = \mu(x) + \sigma(x) \odot \varepsilon, \qquad \varepsilon \sim \mathcal{N}(0, I)")
    out.markdown("The loss is the reconstruction error plus β times the KL divergence that pulls every q(z|x) "
                "towards the prior N(0, I), so that decoding random z ~ N(0, I) gives new images:")
    out.latex(r"L = \underbrace{" + recon + r"}_{\text{reconstruction}} + \beta\,\underbrace{\left(-\tfrac12 "
             r"\sum_j \big(1 + \log\sigma_j^2 - \mu_j^2 - \sigma_j^2\big)\right)}_{\mathrm{KL}(q(z|x)\,\|\,"
             r"\mathcal{N}(0, I))}")
    out.markdown("With β = 1 and the bce loss, -L is the ELBO, a lower bound on the log-likelihood of the image "
                "(the held-out ELBO is reported at the end; higher is better).\n\n"
                "**How to read the curves.**\n"
                "- Reconstruction (summed over pixels, per image) falls quickly, then slowly.\n"
                "- KL usually *rises* at first, as the codes start to carry information about the image, then "
                "levels off. That is healthy.\n"
                "- KL stuck near 0: *posterior collapse*, the decoder ignores the code and every sample looks "
                "alike; lower β.\n"
                "- Samples are blurrier than a GAN's: that is the price of the pixel-wise loss. Lower β gives "
                "sharper reconstructions but random samples get worse; higher β gives smoother, blurrier ones.")
    return out.text()

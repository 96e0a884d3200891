"""The character models' explanation panel."""

from __future__ import annotations

from ...train.explain import Panel


def text_explanation(model: str) -> str:
    out = Panel()
    out.markdown("**What is trained.** A model that predicts the next character from the ones before it. It "
                "writes by sampling a character, appending it and predicting again. The loss is the "
                "cross-entropy of the true next character:")
    out.latex(r"L = -\frac{1}{N}\sum_t \log p(x_{t+1} \mid x_1 \dots x_t) \quad\text{(nats per character)}")
    out.latex(r"\text{bits per character} = \frac{L}{\ln 2}, \qquad \text{perplexity} = e^{L}")
    if model == "bigram":
        out.markdown("**Bigram** looks only at the current character: its whole model is a table of "
                    "next-character scores. It is the baseline that shows what a longer context buys.")
    elif model == "char_lstm":
        out.markdown("**Character LSTM** reads the text one character at a time and carries a memory (the LSTM "
                    "state) of everything so far.")
    else:
        out.markdown("**Character GPT** lets every position look back at all earlier ones (up to the context "
                    "length) with causal self-attention; each head compares queries Q with keys K and mixes "
                    "the values V:")
        out.latex(r"\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{QK^{\top}}{\sqrt{d_k}}\right)V")
        out.markdown("A mask hides later characters, so the model can never peek at what it must predict.")
    out.markdown("**How to read the curves.**\n"
                "- A model that knows nothing guesses uniformly: log₂(alphabet size) bits per character (about "
                "6.6 bits for 100 characters). Every bit below that is something learned.\n"
                "- The bigram levels off early, since one character of context only goes so far; the LSTM and GPT "
                "keep going lower.\n"
                "- At the end the held-out bits per character (the last 10% of the text) are measured. Much "
                "higher than the training value means the model memorised its training text: use dropout, a "
                "smaller model or more text.\n"
                "- Loss jumps up or becomes NaN: lower the learning rate or set a gradient clip.\n"
                "- The film strip is a continuation of one fixed prompt at each frame: read it learn to spell, "
                "then to form words.")
    return out.text()

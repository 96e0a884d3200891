"""A model's explanation panel as Markdown: prose and display formulas.

Families write their panels with :class:`Panel` and hand the text to their
spec (``ModelSpec.explain``); the Train page renders it with ``st.markdown``,
which draws ``$$ ... $$`` blocks as LaTeX.
"""

from __future__ import annotations


class Panel(list):
    """Paragraphs and formulas, in reading order."""

    def markdown(self, text: str) -> None:
        self.append(text)

    def latex(self, formula: str) -> None:
        self.append(f"$$\n{formula}\n$$")

    def text(self) -> str:
        return "\n\n".join(self)

"""Speed figures per area; each module exposes ``run(quick: bool = False) -> dict``."""

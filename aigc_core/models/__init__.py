"""The model families, one folder each (``gan/``, ``vae/``, ``text/``, ``tabular/``).

A family folder holds:

- ``networks.py``: the ``nn.Module``s and the losses, with shape comments at
  each stage and the loss formulas in the docstrings;
- ``trainer.py``: a :class:`aigc_core.train.base.Trainer` subclass per model
  (``step``, ``film_strip``, ``sample(n, seed, **knobs)``, checkpoint extras),
  using the shared helpers of :mod:`aigc_core.train.utils`;
- ``config.py``: the settings dataclass of each model and its sampling-knobs
  dataclass, both made of :func:`aigc_core.config.param` fields;
- ``explain.py``: the explanation panel (Markdown with ``$$...$$`` formulas);
- ``__init__.py``: the declarations, one :class:`aigc_core.registry.ModelSpec`
  per model passed to :func:`aigc_core.registry.register`.

A new family adds its folder and one line to
:data:`aigc_core.registry.MODEL_MODULES`; ``tests/test_model_contract.py``
then checks it like every other model. No family imports another.
"""

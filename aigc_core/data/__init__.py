"""Data sets: built-in ones that work offline, and validated uploads.

Use :func:`aigc_core.data.catalog.list_datasets` and
:func:`aigc_core.data.catalog.load_dataset`; the containers are in
:mod:`aigc_core.data.base`.
"""

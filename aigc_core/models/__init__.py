"""Generative models, one module per family; each registers its models."""

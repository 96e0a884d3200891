"""Trainers and the one training loop that drives them."""

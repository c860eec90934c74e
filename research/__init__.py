"""Experiments beside the product: nothing in backend/ or addon/ imports this (research/README.md)."""

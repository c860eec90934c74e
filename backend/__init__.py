"""ShapeLLM-Omni backend: models, geometry and the ZeroMQ service. Imports nothing heavy here."""

__version__ = "0.1.0"

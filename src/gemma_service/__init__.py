"""gemma-service: a self-hosted inference service for Google's Gemma models."""

__version__ = "0.1.0"

"""Persistent memory for RAG: stores, embedders, retrieval and prompt sources."""

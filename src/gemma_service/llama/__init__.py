"""Starting llama.cpp in a process: which CPU kernels load, proven to run on this host.

The lowest layer: the engine and the memory's GGUF embedder both start llama.cpp through it.
"""

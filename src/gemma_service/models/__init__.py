"""Models: the catalogue of GGUFs this server can serve, and the pool that loads them on demand.

Each loaded model is its own engine (scheduler, KV cache, prefix cache). The chat layer asks the
pool for a model by the request's ``model`` and holds it (a lease) while the request runs, so a
model with running requests is never unloaded under them.
"""

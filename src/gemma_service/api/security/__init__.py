"""Who may call the server and how much: API keys, JWTs, rate limits, request-size limits.

``api/middleware.py`` puts these into the app's middleware stack; nothing here runs at import
time.
"""

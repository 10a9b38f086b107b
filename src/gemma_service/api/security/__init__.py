"""Who may call the server and how much: API keys, JWTs, rate limits, request-size limits.

``install.install_security`` wires it all into the app; nothing here runs at import time.
"""

"""tunetop's bundled PyTorch runner (`python -m runner SPEC.toml`).

Usable without the dashboard; never imports Textual. `runner.spec` imports no torch either:
the dashboard builds specs with it.
"""

"""tunetop's monitor: log readers, playbook diagnosis, remedies and the Textual app.

Nothing under this package imports torch (the monitor runs beside training, often in an
environment without it); `tests/test_imports.py` holds that line.
"""

__version__ = "0.1.0"

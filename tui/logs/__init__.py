"""Reading training logs: incremental readers, run discovery and the columnar run store.

A library a script can use without the app: nothing here imports Textual or torch.
"""

"""The playbook's detectors (playbook/RULES.md): pure functions and streaming objects over
arrays. No Textual, no torch, no file reading: they take what the run store holds."""

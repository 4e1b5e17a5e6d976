"""`python -m runner SPEC.toml [--out DIR]`, `python -m runner --resume RUN_FOLDER`."""

from runner.cli import main

raise SystemExit(main())

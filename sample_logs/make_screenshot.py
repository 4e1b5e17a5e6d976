"""Save the README's screenshot: the dashboard on sample_logs/, on the transformer sweep's run
that turned unstable mid-training, as an SVG (Textual's own export).

    python sample_logs/make_screenshot.py [--out sample_logs/screenshot.svg]

Run it after make_samples.py: the folder names in the picture carry the samples' timestamps.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from tui.app import make_app
from tui.widgets.run_tree import NodeRef

HERE = Path(__file__).resolve().parent
SIZE = (160, 48)


async def shoot(out: Path) -> None:
    app = make_app([HERE], readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        deadline = time.monotonic() + 60
        target = None
        while target is None and time.monotonic() < deadline:
            await pilot.pause(0.2)
            ids = [r for r in app.runs if r.startswith("runner/transformer_lr-")]
            if app.rounds and ids and app.studies:
                target = sorted(ids)[2]  # t002: lr 0.3, rises after step 228 (R12)
        if target is None:
            raise SystemExit("the samples did not load within 60 s: run make_samples.py first")
        app.select(NodeRef("run", target))
        await pilot.pause(0.5)
        out.write_text(app.export_screenshot(title="tunetop"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "screenshot.svg")
    asyncio.run(shoot(ap.parse_args().out))


if __name__ == "__main__":
    main()

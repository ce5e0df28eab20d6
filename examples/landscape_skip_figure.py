"""The two 2-D loss landscapes of examples/landscape_skip.toml side by side, with sharpness.

Reads ``RUN/landscape-skip/landscape.json`` and ``RUN/landscape-noskip/landscape.json`` (written
by ``goodfit landscape``) and the curvature reports if present; writes ``RUN/landscapes.png``
and prints, for each net, the loss at the solution, the loss rise at distance 0.5 and 1 along
the filter-normalized directions, and the top Hessian eigenvalue.

Run: ``python examples/landscape_skip_figure.py runs/skip``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from matplotlib.figure import Figure

from goodfit.atomic import atomic_savefig
from goodfit.diagnose.landscape import Landscape, draw_2d


def main(run: Path) -> None:
    fig = Figure(figsize=(12.0, 9.0), layout="constrained")
    for i, name in enumerate(("skip", "noskip")):
        data = json.loads((run / f"landscape-{name}" / "landscape.json").read_text())
        fields = {k: data[k] for k in Landscape.__dataclass_fields__}
        ls = Landscape(**fields)
        title = "with skip connections" if name == "skip" else "without skip connections"
        draw_2d(fig, ls, title, (2, 2, 2 * i + 1), (2, 2, 2 * i + 2))
        curv = run / f"curvature-{name}" / "curvature.json"
        lmax = json.loads(curv.read_text())["lambda_max"] if curv.exists() else None
        print(f"{title:<26} loss {ls.center_loss:.4f}  rise at 0.5 {ls.rise_at(0.5):.4f}  "
              f"rise at 1 {ls.rise_at(1.0):.4f}  top Hessian eigenvalue {lmax}")  # fmt: skip
    atomic_savefig(fig, run / "landscapes.png", dpi=110)
    print(f"saved {run / 'landscapes.png'}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/skip"))

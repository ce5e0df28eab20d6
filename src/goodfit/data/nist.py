"""NIST StRD nonlinear least-squares reference problems.

A small parser of the NIST Statistical Reference Datasets (StRD) ``.dat`` files into the
model, the data, the two starting points and the certified values, plus NIST's log relative
error (LRE) used to score a solver. Each model is transcribed by hand from the file header as a
torch function ``f(b, x)`` of a 1-D float64 parameter vector ``b``; the parser checks that the
header still reads as transcribed, so a mismatched file is an error, not a silent wrong fit.

Example
-------
>>> problem = load_nist("Misra1a.dat")                       # doctest: +SKIP
>>> from goodfit.optim import levenberg_marquardt
>>> res = levenberg_marquardt(problem.residuals, problem.starts[0])  # doctest: +SKIP
>>> problem.lre(res.x).min() >= 6                            # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from goodfit.errors import DataError

__all__ = ["NIST_MODELS", "NistProblem", "find_nist_dir", "load_nist", "load_nist_dir", "lre"]

_PI = math.pi


def _cols(b: Tensor) -> list[Tensor]:
    return list(b.unbind(-1))


def _chwirut(b: Tensor, x: Tensor) -> Tensor:
    b1, b2, b3 = _cols(b)
    return torch.exp(-b1 * x) / (b2 + b3 * x)


def _gauss(b: Tensor, x: Tensor) -> Tensor:
    b1, b2, b3, b4, b5, b6, b7, b8 = _cols(b)
    return (
        b1 * torch.exp(-b2 * x)
        + b3 * torch.exp(-((x - b4) ** 2) / b5**2)
        + b6 * torch.exp(-((x - b7) ** 2) / b8**2)
    )


def _lanczos(b: Tensor, x: Tensor) -> Tensor:
    b1, b2, b3, b4, b5, b6 = _cols(b)
    return b1 * torch.exp(-b2 * x) + b3 * torch.exp(-b4 * x) + b5 * torch.exp(-b6 * x)


def _danwood(b: Tensor, x: Tensor) -> Tensor:
    b1, b2 = _cols(b)
    return b1 * x**b2


def _enso(b: Tensor, x: Tensor) -> Tensor:
    b1, b2, b3, b4, b5, b6, b7, b8, b9 = _cols(b)
    return (
        b1
        + b2 * torch.cos(2 * _PI * x / 12)
        + b3 * torch.sin(2 * _PI * x / 12)
        + b5 * torch.cos(2 * _PI * x / b4)
        + b6 * torch.sin(2 * _PI * x / b4)
        + b8 * torch.cos(2 * _PI * x / b7)
        + b9 * torch.sin(2 * _PI * x / b7)
    )


def _hahn1(b: Tensor, x: Tensor) -> Tensor:
    b1, b2, b3, b4, b5, b6, b7 = _cols(b)
    return (b1 + b2 * x + b3 * x**2 + b4 * x**3) / (1 + b5 * x + b6 * x**2 + b7 * x**3)


def _kirby2(b: Tensor, x: Tensor) -> Tensor:
    b1, b2, b3, b4, b5 = _cols(b)
    return (b1 + b2 * x + b3 * x**2) / (1 + b4 * x + b5 * x**2)


def _mgh17(b: Tensor, x: Tensor) -> Tensor:
    b1, b2, b3, b4, b5 = _cols(b)
    return b1 + b2 * torch.exp(-x * b4) + b3 * torch.exp(-x * b5)


def _misra1a(b: Tensor, x: Tensor) -> Tensor:
    b1, b2 = _cols(b)
    return b1 * (1 - torch.exp(-b2 * x))


def _misra1b(b: Tensor, x: Tensor) -> Tensor:
    b1, b2 = _cols(b)
    return b1 * (1 - (1 + b2 * x / 2) ** (-2))


def _misra1c(b: Tensor, x: Tensor) -> Tensor:
    b1, b2 = _cols(b)
    return b1 * (1 - (1 + 2 * b2 * x) ** (-0.5))


def _misra1d(b: Tensor, x: Tensor) -> Tensor:
    b1, b2 = _cols(b)
    return b1 * b2 * x * ((1 + b2 * x) ** (-1))


def _nelson(b: Tensor, x: Tensor) -> Tensor:
    # log[y] = b1 - b2*x1 * exp[-b3*x2]; the response is log(y) (see NistProblem.response)
    b1, b2, b3 = _cols(b)
    return b1 - b2 * x[:, 0] * torch.exp(-b3 * x[:, 1])


def _roszman1(b: Tensor, x: Tensor) -> Tensor:
    b1, b2, b3, b4 = _cols(b)
    return b1 - b2 * x - torch.atan(b3 / (x - b4)) / _PI


# name -> (model, header formula with all whitespace removed, response transform)
NIST_MODELS: dict[str, tuple[Callable[[Tensor, Tensor], Tensor], str, str]] = {
    "Chwirut1": (_chwirut, "y=exp[-b1*x]/(b2+b3*x)+e", "y"),
    "Chwirut2": (_chwirut, "y=exp(-b1*x)/(b2+b3*x)+e", "y"),
    "DanWood": (_danwood, "y=b1*x**b2+e", "y"),
    "ENSO": (
        _enso,
        "y=b1+b2*cos(2*pi*x/12)+b3*sin(2*pi*x/12)+b5*cos(2*pi*x/b4)+b6*sin(2*pi*x/b4)"
        "+b8*cos(2*pi*x/b7)+b9*sin(2*pi*x/b7)+e",
        "y",
    ),
    "Gauss1": (
        _gauss,
        "y=b1*exp(-b2*x)+b3*exp(-(x-b4)**2/b5**2)+b6*exp(-(x-b7)**2/b8**2)+e",
        "y",
    ),
    "Gauss2": (
        _gauss,
        "y=b1*exp(-b2*x)+b3*exp(-(x-b4)**2/b5**2)+b6*exp(-(x-b7)**2/b8**2)+e",
        "y",
    ),
    "Gauss3": (
        _gauss,
        "y=b1*exp(-b2*x)+b3*exp(-(x-b4)**2/b5**2)+b6*exp(-(x-b7)**2/b8**2)+e",
        "y",
    ),
    "Hahn1": (_hahn1, "y=(b1+b2*x+b3*x**2+b4*x**3)/(1+b5*x+b6*x**2+b7*x**3)+e", "y"),
    "Kirby2": (_kirby2, "y=(b1+b2*x+b3*x**2)/(1+b4*x+b5*x**2)+e", "y"),
    "Lanczos1": (_lanczos, "y=b1*exp(-b2*x)+b3*exp(-b4*x)+b5*exp(-b6*x)+e", "y"),
    "Lanczos2": (_lanczos, "y=b1*exp(-b2*x)+b3*exp(-b4*x)+b5*exp(-b6*x)+e", "y"),
    "Lanczos3": (_lanczos, "y=b1*exp(-b2*x)+b3*exp(-b4*x)+b5*exp(-b6*x)+e", "y"),
    "MGH17": (_mgh17, "y=b1+b2*exp[-x*b4]+b3*exp[-x*b5]+e", "y"),
    "Misra1a": (_misra1a, "y=b1*(1-exp[-b2*x])+e", "y"),
    "Misra1b": (_misra1b, "y=b1*(1-(1+b2*x/2)**(-2))+e", "y"),
    "Misra1c": (_misra1c, "y=b1*(1-(1+2*b2*x)**(-.5))+e", "y"),
    "Misra1d": (_misra1d, "y=b1*b2*x*((1+b2*x)**(-1))+e", "y"),
    "Nelson": (_nelson, "log[y]=b1-b2*x1*exp[-b3*x2]+e", "log"),
    "Roszman1": (_roszman1, "y=b1-b2*x-arctan[b3/(x-b4)]/pi+e", "y"),
}


def lre(estimate: Tensor, certified: Tensor, digits: int = 11) -> Tensor:
    """NIST log relative error, ``LRE = -log10(|q - c| / |c|)``, per component.

    As NIST StRD defines it: the number of leading significant digits of ``q`` that agree with
    the certified value ``c``, capped at ``digits`` (certified values carry 11); ``q == c``
    gives ``digits``, a non-finite estimate gives 0.
    """
    q = estimate.detach().to(torch.float64).cpu()
    c = certified.detach().to(torch.float64).cpu()
    with torch.no_grad():
        rel = (q - c).abs() / c.abs()
        out = -torch.log10(rel)
        out = torch.where(rel == 0, torch.full_like(out, float(digits)), out)
        out = torch.where(torch.isfinite(q), out, torch.zeros_like(out))
        return out.clamp(0.0, float(digits))


@dataclass
class NistProblem:
    """One NIST StRD nonlinear regression problem.

    Attributes
    ----------
    name, difficulty : str
        Dataset name and NIST's level ("Lower", "Average", "Higher").
    model : callable
        ``model(b, x) -> prediction``; ``b`` is a 1-D float64 tensor of ``n_params`` values.
    x, y : Tensor
        Predictors (``(m,)``, or ``(m, k)`` with several) and raw response ``(m,)``.
    starts : list of Tensor
        NIST's Start 1 and Start 2.
    certified, certified_std : Tensor
        Certified parameter values and their standard deviations.
    certified_rss : float
        Certified residual sum of squares.
    """

    name: str
    difficulty: str
    model: Callable[[Tensor, Tensor], Tensor]
    x: Tensor
    y: Tensor
    starts: list[Tensor]
    certified: Tensor
    certified_std: Tensor
    certified_rss: float
    response_transform: str = "y"
    header_model: str = field(default="", repr=False)

    @property
    def n_params(self) -> int:
        return int(self.certified.numel())

    @property
    def response(self) -> Tensor:
        """The modelled response: ``y``, or ``log(y)`` for Nelson."""
        return torch.log(self.y) if self.response_transform == "log" else self.y

    def residuals(self, b: Tensor) -> Tensor:
        """``r(b) = model(b, x) - response`` (so the RSS is ``||r||^2``)."""
        return self.model(b, self.x) - self.response

    def rss(self, b: Tensor) -> float:
        return float((self.residuals(b) ** 2).sum())

    def lre(self, b: Tensor) -> Tensor:
        """Per-parameter NIST log relative error of ``b`` against the certified values."""
        return lre(b, self.certified)


_LINES = re.compile(r"\(lines\s+(\d+)\s+to\s+(\d+)\)", re.IGNORECASE)


def load_nist(path: str | os.PathLike[str]) -> NistProblem:
    """Parse one NIST StRD nonlinear regression ``.dat`` file into a :class:`NistProblem`.

    The header's "(lines a to b)" ranges locate the starting/certified values and the data;
    the model is looked up in :data:`NIST_MODELS` and its formula checked against the header.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DataError(f"cannot read NIST StRD file {str(path)!r}: {exc}") from exc
    name = path.stem
    if name not in NIST_MODELS:
        raise DataError(
            f"no model transcription for NIST problem {name!r} ({path}); "
            f"known: {sorted(NIST_MODELS)}"
        )
    model, formula, transform = NIST_MODELS[name]
    text = "\n".join(lines)

    def line_range(label: str) -> tuple[int, int]:
        for ln in lines[:20]:
            if ln.strip().lower().startswith(label) or label in ln.lower():
                m = _LINES.search(ln)
                if m:
                    return int(m.group(1)), int(m.group(2))
        raise DataError(f"{path}: header has no '{label} (lines a to b)' entry")

    s0, s1 = line_range("starting values")
    d0, d1 = line_range("data   ")
    # model header text: from "Model:" to the "Starting values" table, whitespace removed
    m_start = next((i for i, ln in enumerate(lines) if ln.startswith("Model:")), None)
    if m_start is None:
        raise DataError(f"{path}: no 'Model:' section in the header")
    header_model = "".join("".join(lines[m_start : s0 - 1]).split())
    if formula not in header_model:
        raise DataError(
            f"{path}: header model does not match the transcription {formula!r}; "
            "the file differs from the NIST StRD problem of that name"
        )
    starts1, starts2, cert, cert_sd = [], [], [], []
    for ln in lines[s0 - 1 : s1]:
        vals = ln.split("=", 1)[1].split()
        if len(vals) != 4:
            raise DataError(f"{path}: cannot parse parameter line {ln!r}")
        a, b_, c, d = (float(v) for v in vals)
        starts1.append(a)
        starts2.append(b_)
        cert.append(c)
        cert_sd.append(d)
    m_rss = re.search(r"Residual Sum of Squares:\s+(\S+)", text)
    m_diff = re.search(r"(Lower|Average|Higher) Level of Difficulty", text)
    data = [[float(v) for v in ln.split()] for ln in lines[d0 - 1 : d1] if ln.strip()]
    dt = torch.tensor(data, dtype=torch.float64)
    if dt.ndim != 2 or dt.shape[1] < 2:
        raise DataError(f"{path}: data block (lines {d0} to {d1}) is not a y/x table")
    x = dt[:, 1] if dt.shape[1] == 2 else dt[:, 1:].contiguous()
    f64 = torch.float64
    return NistProblem(
        name=name,
        difficulty=m_diff.group(1) if m_diff else "unknown",
        model=model,
        x=x.contiguous(),
        y=dt[:, 0].contiguous(),
        starts=[torch.tensor(starts1, dtype=f64), torch.tensor(starts2, dtype=f64)],
        certified=torch.tensor(cert, dtype=f64),
        certified_std=torch.tensor(cert_sd, dtype=f64),
        certified_rss=float(m_rss.group(1)) if m_rss else float("nan"),
        response_transform=transform,
        header_model=header_model,
    )


def find_nist_dir(start: str | os.PathLike[str] | None = None) -> Path:
    """Locate the NIST StRD folder.

    Order: the ``GOODFIT_NIST_DIR`` environment variable; then ``shared/data/nist-strd`` beside
    (or inside) the repository that contains ``start`` (default: this file), i.e.
    ``<repo>/../shared/data/nist-strd``. Raises :class:`~goodfit.errors.DataError` naming the
    places searched when none exists.
    """
    env = os.environ.get("GOODFIT_NIST_DIR")
    if env:
        p = Path(env)
        if p.is_dir():
            return p
        raise DataError(f"GOODFIT_NIST_DIR={env!r} is not a directory")
    here = Path(start or __file__).resolve()
    tried = []
    for parent in [here, *here.parents]:
        for cand in (
            parent / "shared" / "data" / "nist-strd",
            parent.parent / "shared" / "data" / "nist-strd",
        ):
            tried.append(str(cand))
            if cand.is_dir():
                return cand
    raise DataError(
        "NIST StRD data folder not found: set GOODFIT_NIST_DIR or place it at "
        f"<repo>/../shared/data/nist-strd (searched {len(tried)} places, e.g. {tried[:2]})"
    )


def load_nist_dir(path: str | os.PathLike[str] | None = None) -> list[NistProblem]:
    """Load every ``*.dat`` problem in ``path`` (default: :func:`find_nist_dir`), sorted by name."""
    folder = Path(path) if path is not None else find_nist_dir()
    files = sorted(folder.glob("*.dat"))
    if not files:
        raise DataError(f"no NIST StRD .dat files in {str(folder)!r}")
    return [load_nist(f) for f in files]

"""Every second-order solver through ``goodfit train``: the loss it reports is the model's, its
``converged`` is honest, and a divergence exits 2 (as the first-order loop's does)."""

from __future__ import annotations

import json

import pytest
import torch

import goodfit.optim as gf_optim
from goodfit.app.cli import main

POLY = """
[data]
name = "poly"
val_fraction = 0.25

[model]
kind = "mlp"
widths = [8]
activation = "tanh"

[optimizer]
name = "{method}"

[train]
seed = 0
"""


@pytest.mark.parametrize("method", sorted(gf_optim.SECOND_ORDER))
def test_every_solver_trains_through_the_cli(method, write_toml, tmp_path, torch_globals):
    out = tmp_path / "run"
    assert main(["train", str(write_toml(POLY.format(method=method))), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    records = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    losses = [r["train_loss"] for r in records]
    assert all(torch.isfinite(torch.tensor(losses)))
    # a solver that says it converged reached a lower loss than it started from
    assert isinstance(summary["converged"], bool)
    if summary["converged"]:
        assert losses[-1] < losses[0]
    assert summary["final_train_loss"] == pytest.approx(losses[-1])
    assert summary["test_loss"] > 0 and summary["n_iter"] == len(records)


@pytest.mark.parametrize(
    "options",
    [
        'name = "levenberg_marquardt"\njac = "fd"\nmax_iter = 30',  # forward differences
        'name = "levenberg_marquardt"\nbounds = [-5.0, 5.0]\nmax_iter = 30',  # box bounds
        'name = "levenberg"\nscaling = "identity"\nmax_iter = 30',  # the seed's literal mu I
    ],
)
def test_least_squares_options_reach_the_solver_from_the_config(
    options, write_toml, tmp_path, torch_globals
):
    out = tmp_path / "run"
    toml = POLY.replace('name = "{method}"', options)
    assert main(["train", str(write_toml(toml)), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert isinstance(summary["converged"], bool) and summary["n_iter"] <= 30
    if "bounds" in options:
        state = torch.load(out / "model.pt", weights_only=True)
        params = state.get("state_dict", state) if isinstance(state, dict) else state
        values = torch.cat([v.flatten() for v in params.values() if torch.is_tensor(v)])
        assert values.numel() == 8 + 8 + 8 + 1  # every weight of the 1-8-1 MLP, inside the box
        assert bool((values.abs() <= 5.0).all())


def test_a_diverging_solver_exits_2(write_toml, tmp_path, capsys, monkeypatch, torch_globals):
    """The CLI maps a solver's ``diverged`` to exit 2 with the losses, never ``converged``."""
    real = gf_optim.fit_least_squares

    def diverging(*args, **kwargs):
        result = real(*args, **kwargs)
        result.diverged, result.converged = True, False
        return result

    monkeypatch.setattr(gf_optim, "fit_least_squares", diverging)
    out = tmp_path / "run"
    status = main(["train", str(write_toml(POLY.format(method="gauss_newton"))), "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2 and "gauss_newton diverged" in err and "Traceback" not in err
    assert not (out / "summary.json").exists()

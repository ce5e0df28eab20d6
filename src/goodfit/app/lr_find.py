"""``goodfit lr-find CONFIG.toml``: the LR range test (:func:`goodfit.diagnose.lr_find`) on the
configured data, model and optimizer; writes ``lr_find.png`` and ``lr_find.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from goodfit.app.build import (
    build_augment,
    build_model,
    build_optimizer,
    is_second_order,
    load_dataset_from_config,
    prepare_from_config,
)
from goodfit.app.config import Config
from goodfit.app.regularize_spec import penalty_from_config
from goodfit.atomic import atomic_write_text
from goodfit.diagnose.lr_find import LRFindResult, check_lr_find_args, lr_find
from goodfit.errors import ConfigError
from goodfit.train.loop import seed_everything

__all__ = ["run_lr_find"]


def run_lr_find(
    cfg: Config,
    out: Path,
    *,
    steps: int = 200,
    min_lr: float = 1e-6,
    max_lr: float = 10.0,
    force: bool = False,
) -> LRFindResult:
    """Sweep the learning rate of ``cfg``'s optimizer on its training part, at initialization
    (nothing is trained for good); save the curve and its reading into ``out``."""
    try:
        check_lr_find_args(min_lr, max_lr, steps, cfg.train.batch_size, 0.98, 4.0)
    except ValueError as err:
        flag = str(err).split(" ", 1)[0].replace("_", "-")
        raise ConfigError(f"--{flag}: {err}") from None
    if is_second_order(cfg):
        raise ConfigError(
            f"[optimizer] {cfg.optimizer.name!r} is a full-batch second-order solver with no "
            "learning rate to sweep; lr-find needs a first-order optimizer (e.g. sgd, adam)"
        )
    if cfg.train.threads is not None:
        torch.set_num_threads(cfg.train.threads)
    seed_everything(cfg.train.seed)
    prepared = prepare_from_config(cfg, load_dataset_from_config(cfg.data))
    ds = prepared.dataset
    model = build_model(cfg.model, ds.input_shape, ds.num_outputs)
    try:
        model.to(cfg.train.device)
    except (RuntimeError, ValueError) as err:
        raise ConfigError(f"[train] device = {cfg.train.device!r}: {err}") from None
    optimizer = build_optimizer(cfg.optimizer, model)
    penalty = penalty_from_config(
        cfg.regularize, model, batch_size=cfg.train.batch_size, n_data=len(prepared.train[0])
    )
    result = lr_find(
        model,
        prepared.train,
        optimizer=optimizer,
        min_lr=min_lr,
        max_lr=max_lr,
        steps=steps,
        batch_size=cfg.train.batch_size,
        seed=cfg.train.seed,
        penalty=penalty,
        augment=build_augment(cfg, ds.input_shape, ds.num_classes),
    )
    from goodfit.app.run_folder import claim_run_folder

    with claim_run_folder(out, kind="lr_find", force=force):
        record: dict[str, Any] = result.to_dict()
        record["optimizer"] = cfg.optimizer.name
        atomic_write_text(out / "lr_find.json", json.dumps(record, indent=2) + "\n")
        result.plot(out / "lr_find.png")
    return result

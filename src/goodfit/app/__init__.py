"""The application layer: configs in, run folders out.

``config`` (pydantic models of every TOML section) -> ``build`` (the parts of a run, each built
once) -> ``run`` (one run folder) / ``study`` (variants over folds, analysed and reported) /
``search`` (Optuna over any config key) / ``lr_find``, ``diagnose``, ``augment_preview`` ->
``cli`` (argument parsing only). Everything
here is a front over the library (:mod:`goodfit.train`, :mod:`goodfit.select`,
:mod:`goodfit.diagnose`, :mod:`goodfit.report`) and the parts; nothing below imports it.

>>> from goodfit.app import load_config, run_config             # doctest: +SKIP
>>> result = run_config(load_config("examples/digits_cnn.toml"), "runs/digits")  # doctest: +SKIP
"""

from goodfit.app.config import Config, load_config, parse_config
from goodfit.app.run import RunResult, run_config
from goodfit.app.study import prepare_study, run_study

__all__ = [
    "Config",
    "RunResult",
    "load_config",
    "parse_config",
    "prepare_study",
    "run_config",
    "run_study",
]

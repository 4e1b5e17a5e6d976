"""Which runs directly under one folder make a study (DESIGN.md "Runs and studies").

A study is a set of runs that share one configuration except the swept keys. Before issue 15
any folder holding two runs was one, so an `outputs/` folder of unrelated fine-tunes got
`tuning_budget` and `steps_differ` findings. The rule now:

- Where every run's configuration is known (hyperparameters from run.json, config files,
  add_hparams, trainer_state's trial_params or the folder name; a planned length alone is not
  a configuration), the runs are a study when at least one key differs (identical
  configurations are reruns: nothing was swept; `seed` alone is a replicate study) and at most
  `MAX_SWEPT` keys other than seed differ (a key some runs lack counts as differing), none of
  them naming the task (`env_name`, `dataset`, `model_name_or_path`, ...: runs on different
  tasks are not trials of one search). Unrelated runs differ in many keys: learning rate,
  epochs, batch size, model, dataset, ...
- Where some run's configuration is unknown, the runs are a study only when every name reads
  as a trial: `t000`, `trial_3`, `version_2`, `run-4`, `seed_1`, `fold0`, a Ray Tune trial
  (`train_fn_1a2b3_00000_0_...`), or a name holding hyperparameters (`lr=0.1`, `lr_0.001`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from tui.logs.hparams import from_folder_name
from tui.logs.model import Run

MAX_SWEPT = 6  # a quasi-random search over Adam's lr, beta1, beta2, eps, wd and warmup
_NOT_CONFIG = frozenset({"max_train_steps", "seed"})
_TRIAL_NAME = re.compile(
    r"^(?:t|trial|version|run|seed|fold|rep|replica|exp)[_\-]?\d+$"
    r"|^.+_[0-9a-f]{5}_\d{5}_\d+(?:_.*)?$",
    re.IGNORECASE,
)


def reads_as_trial(name: str) -> bool:
    return bool(_TRIAL_NAME.match(name)) or bool(from_folder_name(name))


# keys that say what is trained on / what is trained, not how: differing, the runs are unrelated
_TASK_KEY = re.compile(
    r"(?:^|[_.\-])(?:env|environment|task|dataset|datasets|data|model|arch|architecture"
    r"|game|domain|corpus)(?:$|[_.\-])",
    re.IGNORECASE,
)


def _config(run: Run) -> dict[str, Any]:
    return {k: v for k, v in run.hparams.items() if k not in _NOT_CONFIG}


def differing_keys(runs: Sequence[Run]) -> set[str]:
    """Keys whose values differ between the runs, or that some runs lack (seed aside)."""
    configs = [_config(r) for r in runs]
    keys: set[str] = set().union(*configs) if configs else set()
    out: set[str] = set()
    for key in keys:
        values = {json.dumps(c.get(key, "<absent>"), sort_keys=True, default=str) for c in configs}
        if len(values) > 1:
            out.add(key)
    return out


def _seeds_differ(runs: Sequence[Run]) -> bool:
    return len({json.dumps(r.hparams.get("seed"), default=str) for r in runs}) > 1


def is_study(runs: Sequence[Run]) -> bool:
    if len(runs) < 2:
        return False
    if all(_config(r) for r in runs):
        differ = differing_keys(runs)
        if not differ and not _seeds_differ(runs):
            return False  # reruns of one configuration
        if any(_TASK_KEY.search(k) for k in differ):
            return False
        return len(differ) <= MAX_SWEPT
    return all(reads_as_trial(r.path.name) for r in runs)

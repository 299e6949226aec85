"""Training logs through dvclive, DVC's own logger, for train@B: per epoch the loss, accuracy, learning
rate and images/s go to `data/models/<B>/dvclive/` as training runs, so `dvc exp show` (and the VS Code
DVC extension) follow a `dvc exp run` live, and `dvc plots` and the report draw the same files.

dvclive is kept off everything DVC already does for camloc: `dvcyaml=False` (dvc.yaml declares the
metrics and plots itself; dvclive's default would rewrite dvc.yaml from inside a foreach stage),
`save_dvc_exp=False` (a plain `dvc repro` must not create experiments), no report. Only rank 0 logs
under torchrun. Files (dvclive 3): `metrics.json` (the last epoch's values and its `step`) and
`plots/metrics/<name>.tsv` (`step`, `<name>`; step = epoch, 1-based). The folder is written in place
while training runs (that is the point: it is followed live); at the end it moves into the model
folder's temporary sibling with the rest (`move_into`), so the finished folder appears at once.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

LIVE_DIR = "dvclive"
FIELDS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "images_per_s")


def _live_class():
    """dvclive's `Live`, tolerant of a Git repository with no commit yet.

    dvclive 3.x asks Git for HEAD before it checks whether the repository has any commit, so `dvc repro`
    right after `git init` (a newcomer's first run, and every test that copies the project) fails with
    scmrepo's "Empty git repo". camloc's logger needs nothing from Git (no experiments are saved), so on
    that error it takes dvclive's own no-Git path: a default experiment name and no DVC repo handle."""
    from dvclive import Live
    from scmrepo.exceptions import SCMError

    class _Live(Live):
        def _init_dvc(self):
            try:
                super()._init_dvc()
            except SCMError as exc:
                log.info("dvclive: %s; logging without Git (no commit yet)", exc)
                self._dvc_repo = None
                self._exp_name = self._exp_name or "camloc"
                self._dvc_file = self._init_dvc_file()

    return _Live


def start(model_dir: str | Path, is_root: bool, history: list[dict] = ()):
    """A dvclive `Live` on `model_dir/dvclive` for rank 0 (None on the other ranks), with the epochs of
    a resumed `history` logged first so the files always hold every epoch."""
    if not is_root:
        return None
    live = _live_class()(str(Path(model_dir) / LIVE_DIR), dvcyaml=False, save_dvc_exp=False, report=None)
    for row in history:
        log_epoch(live, row)
    return live


def log_epoch(live, row: dict) -> None:
    """One epoch's row (`epoch` 1-based, and those of FIELDS it has) as dvclive step `epoch`; a no-op
    for None."""
    if live is None:
        return
    live.step = int(row["epoch"])
    for name in FIELDS:
        if name in row:
            live.log_metric(name, float(row[name]))
    live.make_summary()


def write_summary(model_dir: str | Path, values: dict) -> None:
    """The dvclive folder of a model scored without training (epochs: 0): `values` (its val scores) as
    step 0, the checkpoint before any epoch, so dvc.yaml's metrics and plots exist for every model folder
    (a lone point; no train_* file, so contracts.read_history finds no training curves)."""
    live = start(model_dir, True)
    live.step = 0
    for name, value in values.items():
        live.log_metric(name, float(value))
    live.make_summary()
    finish(live)


def finish(live) -> None:
    if live is not None:
        live.end()


def move_into(model_dir: str | Path, tmp: str | Path) -> None:
    """Move the finished dvclive folder from the model folder into its temporary sibling `tmp`."""
    src = Path(model_dir) / LIVE_DIR
    if src.is_dir():
        os.replace(src, Path(tmp) / LIVE_DIR)

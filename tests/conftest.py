"""Shared fixtures: a tiny synthpets tree and its prepared manifest, built by the real generator and the
real prepare stage (session-scoped: built once, a few seconds, reused by every stage's tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.params import Params, PrepareParams, SplitParams, SynthPetsParams

TINY_SYNTHPETS = SynthPetsParams(num_classes=3, trainval_per_class=12, test_per_class=4,
                                 min_size=64, max_size=96, seed=0, workers=1)
TINY_SPLIT = SplitParams(val_per_class=2, test_per_class=3, seed=0)
TINY_PREPARE = PrepareParams(cache_size=64, workers=1)


def _tiny_params(**overrides) -> Params:
    base = dict(synthpets=TINY_SYNTHPETS, split=TINY_SPLIT, prepare=TINY_PREPARE)
    return Params(**(base | overrides))


@pytest.fixture(scope="session")
def tiny_params():
    """A function: `tiny_params(split=SplitParams(...), ...)` → Params with the tiny dataset sections
    (synthpets, split, prepare) that built `synthpets_raw`/`prepared_dir`, plus your overrides."""
    return _tiny_params


@pytest.fixture(scope="session")
def synthpets_params() -> Params:
    """The Params that built `synthpets_raw` and `prepared_dir`."""
    return _tiny_params()


@pytest.fixture(scope="session")
def synthpets_raw(tmp_path_factory, synthpets_params) -> Path:
    """A tiny synthpets tree in the Oxford-IIIT Pet layout (3 classes × (12 trainval + 4 test), 64–96 px,
    with every planted quirk). Treat it as read-only: it is shared by the whole session."""
    from pipeline.datasets.synthpets import generate

    out = tmp_path_factory.mktemp("synthpets") / "raw"
    generate(synthpets_params.synthpets, out)
    return out


@pytest.fixture(scope="session")
def prepared_dir(tmp_path_factory, synthpets_raw, synthpets_params) -> Path:
    """`prepare` run on `synthpets_raw`: samples.parquet, boxes.parquet, classes.json, report.json and
    images.npy (64×64 cache). Splits per class: train 7, val 2, test 3 (one trainval image of class 1
    has no xml), test_official 4. Read-only, shared by the whole session."""
    from pipeline.contracts import Paths
    from pipeline.stages.prepare import run

    out = tmp_path_factory.mktemp("prepared") / "prepared"
    run(synthpets_params, Paths(raw=synthpets_raw, prepared=out))
    return out

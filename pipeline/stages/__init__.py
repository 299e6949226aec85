"""One module per dvc.yaml stage, each with a `run(params, paths, ...)`: the stage's I/O, its
orchestration and its progress bars; the pure work lives in the domain packages beside this one.

    download.py  prepare.py  train.py  cams.py  evaluate.py  faithfulness.py  report.py
"""

from __future__ import annotations

from tqdm import tqdm


def bar(**kwargs) -> tqdm:
    """The progress bar every stage hands to library code (`pipeline.progress.Bar`); off when not a tty."""
    return tqdm(disable=None, leave=False, **kwargs)

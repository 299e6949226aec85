"""The catalogs: one torch-free registry of cards per axis (datasets, backbones, map methods, WSOL
training methods, metrics). A card says what params validation, the CLI listings, the stages and the
report need to know of a name; its implementation is imported only when used (`Registry.load`).

    from pipeline.catalog.backbones import BACKBONES
    from pipeline.catalog.methods import METHODS
    from pipeline.catalog.wsol import WSOL_METHODS
    from pipeline.catalog.datasets import DATASETS
    from pipeline.catalog.metrics import METRICS

Installed plugins (entry points in the group `camloc.plugins`, pipeline/catalog/plugins.py) register
into the same registries before any of them is first read.
"""

from pipeline.catalog import plugins  # noqa: F401 (arms plugin discovery before the first registry read)

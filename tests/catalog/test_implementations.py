"""Every card of every registry is tied to a real implementation: loading it works, and every backbone's
named hook points resolve on the model it builds (pipeline/models/gap.py `hook_path`)."""

from __future__ import annotations

import pytest
import torch

from pipeline.catalog.backbones import BACKBONES
from pipeline.catalog.datasets import DATASETS
from pipeline.catalog.methods import METHODS
from pipeline.catalog.metrics import METRICS
from pipeline.catalog.registry import load_object
from pipeline.catalog.wsol import WSOL_METHODS
from pipeline.models.backbones import build_backbone
from pipeline.models.gap import GapNet, hook_module
from pipeline.wsol.method import WsolMethod


@pytest.mark.parametrize("name", BACKBONES.names())
def test_every_backbone_builder_loads_and_its_hook_paths_resolve(name):
    info = BACKBONES.get(name)
    assert callable(BACKBONES.load(name))
    model = build_backbone(name, 3)
    assert isinstance(model, GapNet)
    for path in (*info.adl_points, *info.spg_taps):
        assert isinstance(hook_module(model.features, path, name), torch.nn.Module), (name, path)


@pytest.mark.parametrize("name", METHODS.names())
def test_every_map_method_loads(name):
    assert callable(METHODS.load(name))


@pytest.mark.parametrize("name", WSOL_METHODS.names())
def test_every_wsol_method_loads_as_one_object(name):
    card = WSOL_METHODS.get(name)
    assert isinstance(WSOL_METHODS.load(name), WsolMethod)
    if card.trainer:
        assert callable(load_object(card.trainer))
    for field_name, _ in card.hooks:
        assert hasattr(BACKBONES.get("tiny_gap_cnn"), field_name)


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_dataset_fetch_loads(name):
    assert callable(DATASETS.load(name))


@pytest.mark.parametrize("name", METRICS.names())
def test_every_metric_names_its_computing_module(name):
    import importlib

    importlib.import_module(METRICS.get(name).impl)


def test_a_hook_path_that_names_nothing_is_one_clear_error():
    from pipeline.errors import CamlocError

    model = build_backbone("tiny_gap_cnn", 2)
    assert hook_module(model.features, "relu4") is model.features[11]  # named, not positional
    with pytest.raises(CamlocError, match="no module at hook point 'relu9'.*relu6"):
        hook_module(model.features, "relu9", "tiny_gap_cnn")

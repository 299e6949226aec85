"""Golden tests: camloc's AD, IC, deletion and insertion equal torchcam 0.5's `ClassificationMetric` and
`DeletionInsertionMetric`, and camloc's ROAD equals pytorch-grad-cam's ROAD metrics, on a fixed random model
and fixed maps (the peers run their own code on the same model, images, maps, steps and baselines)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.faithfulness import road as R
from pipeline.faithfulness import scores as F
from pipeline.faithfulness.peers import torchcam_scores
from pipeline.faithfulness.scorer import Scorer, normalised
from pipeline.metrics import faithfulness as MF
from pipeline.models import build_backbone

pytest.importorskip("torchcam.metrics")  # the peer (pipeline.faithfulness.peers)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
N, S, CLASSES, STEPS = 4, 24, 5, 8  # S·S = 576 pixels: STEPS divides them, as torchcam's counts need


@pytest.fixture(scope="module")
def case():
    torch.manual_seed(0)
    model = build_backbone("tiny_gap_cnn", CLASSES).eval()
    with torch.no_grad():
        model.classifier.weight.mul_(40.0)  # peaked softmax scores: the edits move them by tenths, not 1e-4
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (N, S, S, 3), dtype=np.uint8)
    labels = rng.integers(0, CLASSES, N)
    low = rng.random((N, 1, 4, 4)).astype(np.float32)  # smooth maps like a CAM, upsampled, in [0, 1]
    maps = torch.nn.functional.interpolate(torch.from_numpy(low), size=(S, S), mode="bilinear").numpy()[:, 0]
    maps = (maps - maps.min((1, 2), keepdims=True)) / np.ptp(maps, axis=(1, 2), keepdims=True)
    return model, images, labels, maps.astype(np.float32)


def _camloc(model, images, labels, maps, road=False):
    scorer = Scorer(model, MEAN, STD, batch_size=64)
    data = F.prepare_images(scorer, images, labels, range(N), 0, insertion_start="baseline", road=road)
    return data, F.method_faithfulness(scorer, data, maps, STEPS, 0, ties="raster")


def _torchcam(model, images, labels, maps):
    x = normalised(images, MEAN, STD, torch.device("cpu"))
    return torchcam_scores(model, x, [int(v) for v in labels], torch.from_numpy(maps), STEPS, batch_size=16)


def test_average_drop_and_increase_in_confidence_equal_torchcam(case):
    model, images, labels, maps = case
    data, res = _camloc(model, images, labels, maps)
    ref = _torchcam(model, images, labels, maps)  # fractions
    assert MF.average_drop(data.clean, res.masked_score) / 100 == pytest.approx(ref["avg_drop"], abs=1e-5)
    assert MF.increase_in_confidence(data.clean, res.masked_score) / 100 == pytest.approx(ref["conf_increase"],
                                                                                          abs=1e-5)
    assert 0 < ref["avg_drop"] < 1  # the case is not degenerate


def test_deletion_and_insertion_equal_torchcam(case):
    model, images, labels, maps = case
    data, res = _camloc(model, images, labels, maps)
    ref = _torchcam(model, images, labels, maps)
    summary = F.summary(data, res)
    assert summary["deletion_auc"] == pytest.approx(ref["deletion_auc"], abs=1e-5)
    assert summary["insertion_auc"] == pytest.approx(ref["insertion_auc"], abs=1e-5)


def test_noise_free_imputation_equals_pytorch_grad_cam():
    road = pytest.importorskip("pytorch_grad_cam.metrics.road")
    rng = np.random.default_rng(1)
    img = torch.tensor(rng.normal(size=(2, 3, 20, 24)), dtype=torch.float32)
    keep = torch.tensor(rng.random((2, 1, 20, 24)) < 0.3)
    keep[1, :, 5:15, 4:20] = False  # a large hole
    ours = torch.from_numpy(R.impute(img.numpy(), keep[:, 0].numpy(), R.ROAD_ITERS, R.ROAD_TOL))  # the stage's
    for i in range(2):
        ref = road.NoisyLinearImputer(noise=0.0)(img[i], keep[i, 0].float())
        assert torch.allclose(ours[i], ref, atol=1e-5), float((ours[i] - ref).abs().max())


def test_road_equals_pytorch_grad_cam_without_noise(case, monkeypatch):
    pgc = pytest.importorskip("pytorch_grad_cam.metrics.road")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    model, images, labels, maps = case
    # noise 0 on both sides (pytorch-grad-cam draws its noise from torch's global generator); ROAD's
    # imputation solved to convergence on this small image
    monkeypatch.setattr(R, "ROAD_NOISE", 0.0)
    monkeypatch.setattr(R, "ROAD_ITERS", 2000)
    monkeypatch.setattr(R, "ROAD_TOL", 1e-10)
    data, res = _camloc(model, images, labels, maps, road=True)
    ours = R.road_per_image(data.clean, res.road)
    monkeypatch.setattr(pgc.NoisyLinearImputer, "__init__", lambda self, noise=0.0, weighting=None: (
        setattr(self, "noise", 0.0), setattr(self, "weighting", pgc.neighbors_weights))[0])
    x = normalised(images, MEAN, STD, torch.device("cpu"))
    targets = [ClassifierOutputSoftmaxTarget(int(c)) for c in labels]
    with torch.no_grad():
        morf = pgc.ROADMostRelevantFirstAverage(list(R.ROAD_PERCENTILES))(x, maps, targets, model)
        lerf = pgc.ROADLeastRelevantFirstAverage(list(R.ROAD_PERCENTILES))(x, maps, targets, model)
    np.testing.assert_allclose(ours["road_morf"], morf, atol=1e-5)
    np.testing.assert_allclose(ours["road_lerf"], lerf, atol=1e-5)
    np.testing.assert_allclose(ours["road_combined"], (lerf - morf) / 2, atol=1e-5)  # ROADCombined's formula
    assert np.abs(morf).max() > 2e-3  # the case is not degenerate (200× the tolerance)

"""The torch-free faithfulness arithmetic (PROTOCOL §6) by hand: AD, IC, the noise rule, AUC, resamples."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.metrics import faithfulness as MF


def test_average_drop_and_increase_by_hand():
    y = np.array([0.8, 0.5, 0.2, 0.4])
    o = np.array([0.4, 0.5, 0.3, 0.4 + 5e-7])  # halved, unchanged, risen, risen by float noise
    halved = 0.4 / (0.8 + MF.DROP_EPS)  # torchcam's denominator: Y + 1e-7 (PROTOCOL §6's Y, kept finite)
    np.testing.assert_allclose(MF.per_image_drop(y, o), [halved, 0.0, 0.0, 0.0], rtol=0, atol=1e-15)
    assert MF.average_drop(y, o) == pytest.approx(100 * halved / 4, rel=1e-12)
    assert MF.increase_in_confidence(y, o) == 50.0  # O > Y strictly: any rise counts, as torchcam's
    w = np.array([[1, 1, 1, 1], [0, 0, 4, 0], [2, 0, 0, 2]], dtype=np.float32)
    np.testing.assert_allclose(MF.average_drop(y, o, w), [100 * halved / 4, 0.0, 100 * halved / 2], rtol=1e-12)
    np.testing.assert_allclose(MF.increase_in_confidence(y, o, w), [50.0, 100.0, 50.0])


def test_trapezoid_auc_by_hand():
    curves = np.array([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.5, 1.0], [1.0, 0.0, 1.0]])
    np.testing.assert_allclose(MF.trapezoid_auc(curves), [1.0, 0.25, 0.5, 0.5])
    with pytest.raises(ValueError):
        MF.trapezoid_auc(np.ones((2, 1)))

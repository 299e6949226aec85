"""The torch-free faithfulness arithmetic (PROTOCOL §6) by hand: AD, IC, the noise rule, AUC, resamples."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.metrics import faithfulness as MF


def test_average_drop_and_increase_by_hand():
    y = np.array([0.8, 0.5, 0.2, 0.4])
    o = np.array([0.4, 0.5, 0.3, 0.4 + 5e-7])  # halved, unchanged, risen, float noise
    np.testing.assert_allclose(MF.per_image_drop(y, o), [0.5, 0.0, 0.0, 0.0])
    assert MF.average_drop(y, o) == pytest.approx(12.5)
    assert MF.increase_in_confidence(y, o) == 25.0  # the noise-sized rise does not count
    w = np.array([[1, 1, 1, 1], [0, 0, 4, 0], [2, 0, 0, 2]], dtype=np.float32)
    np.testing.assert_allclose(MF.average_drop(y, o, w), [12.5, 0.0, 25.0])
    np.testing.assert_allclose(MF.increase_in_confidence(y, o, w), [25.0, 100.0, 0.0])


def test_trapezoid_auc_by_hand():
    curves = np.array([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.5, 1.0], [1.0, 0.0, 1.0]])
    np.testing.assert_allclose(MF.trapezoid_auc(curves), [1.0, 0.25, 0.5, 0.5])
    with pytest.raises(ValueError):
        MF.trapezoid_auc(np.ones((2, 1)))

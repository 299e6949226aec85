"""Issue 20, item 6: thumbnails and per-image file names are unique (readable stem + short hash)."""

from __future__ import annotations

import pytest

from pipeline.report.gallery import Thumb, unique_stem


def _thumb(image_id: str) -> Thumb:
    return Thumb("resnet18", "cam", image_id, "cat", "cat", 0.5, 0.2)


@pytest.mark.parametrize("a,b", [("test/a/b.jpg", "test/a_b.jpg"), ("猫.jpg", "犬.jpg"), ("a b.jpg", "a_b.jpg"),
                                 ("x.jpg", "x.png")])
def test_gallery_thumbnails_of_ids_that_flatten_alike_do_not_collide(a, b):
    assert _thumb(a).relpath != _thumb(b).relpath


def test_a_thumbnail_name_stays_readable_and_stable():
    name = unique_stem("test/Abyssinian_5.jpg")
    assert name.startswith("Abyssinian_5-") and len(name) == len("Abyssinian_5-") + 10
    assert unique_stem("test/Abyssinian_5.jpg") == name  # the same id always names the same file
    assert unique_stem("..") != ".." and "/" not in unique_stem("a/../b")

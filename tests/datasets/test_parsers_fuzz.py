"""Bounded hypothesis fuzzing of the Pets parsers: list lines, VOC xml, trimaps and image decoding.

Each parser either returns a well-formed result or raises its documented user-facing error
(CamlocError / ValueError, which prepare turns into a reported skip) — never anything else.
A longer run: `HYPOTHESIS_PROFILE=long pytest tests/datasets/test_parsers_fuzz.py`.
"""

from __future__ import annotations

import os

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pipeline.datasets import pets
from pipeline.datasets.images import decode_rgb
from pipeline.errors import CamlocError

settings.register_profile("ci", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.register_profile("long", max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "5000")), deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")

token = st.one_of(st.integers(-5, 50).map(str), st.text(max_size=6), st.sampled_from(["#", "1", "2", "3"]))


@settings.get_profile(PROFILE)
@given(st.one_of(st.text(max_size=60), st.lists(token, max_size=6).map(" ".join)))
def test_list_line_parses_or_raises_camloc_error(line):
    try:
        entry = pets.parse_list_line(line, "list.txt:1")
    except CamlocError as e:
        assert "list.txt:1" in str(e)
        return
    if entry is None:
        assert not line.strip() or line.strip().startswith("#")
    else:
        assert entry.class_id >= 1 and entry.breed_id >= 1 and entry.species in ("cat", "dog")
        assert entry.image_id == line.split()[0]


@settings.get_profile(PROFILE)
@given(st.text(alphabet="Aab_", min_size=1, max_size=12), st.integers(1, 37), st.integers(1, 2),
       st.integers(1, 25))
def test_valid_list_lines_round_trip(name, cid, sp, bid):
    e = pets.parse_list_line(f"{name} {cid} {sp} {bid}\n", "x")
    assert (e.image_id, e.class_id, e.species, e.breed_id) == (name, cid, pets.SPECIES[sp], bid)


coord = st.one_of(st.integers(-10, 10**6).map(str), st.sampled_from(["", "nan", "1e400", "-0", "3.7", "x"]))


@st.composite
def voc_documents(draw) -> bytes:
    vals = [draw(coord) for _ in range(6)]
    prolog = draw(st.sampled_from([
        "", '<?xml version="1.0"?>', '<!DOCTYPE a [<!ENTITY e "boom">]>',
        '<!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]>',
    ]))
    name = draw(st.sampled_from(["cat", "dog", "", "&e;", "<b/>"]))
    objects = draw(st.integers(0, 2))
    obj = (f"<object><name>{name}</name><bndbox><xmin>{vals[0]}</xmin><ymin>{vals[1]}</ymin>"
           f"<xmax>{vals[2]}</xmax><ymax>{vals[3]}</ymax></bndbox></object>")
    doc = (f"{prolog}<annotation><size><width>{vals[4]}</width><height>{vals[5]}</height></size>"
           f"{obj * objects}</annotation>")
    cut = draw(st.integers(0, len(doc)))
    return (doc if draw(st.booleans()) else doc[:cut]).encode()


@settings.get_profile(PROFILE)
@given(st.one_of(voc_documents(), st.binary(max_size=200)))
def test_voc_parses_or_raises_value_error(data):
    try:
        size, objects = pets.parse_voc(data)
    except ValueError as e:
        assert str(e)
        return
    assert b"<!ENTITY" not in data  # entity declarations are refused, never expanded
    assert objects
    for o in objects:
        x0, y0, x1, y1 = o.box
        assert x0 <= x1 and y0 <= y1


@settings.get_profile(PROFILE)
@given(arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12)),
              elements=st.sampled_from([1, 2, 2, 2, 3, 0, 255])))
def test_trimap_box_is_the_extent_of_non_background(tri):
    box = pets.trimap_box(tri)
    fg = tri != 2
    if box is None:
        assert not fg.any()
        return
    x0, y0, x1, y1 = box
    assert fg[y0: y1 + 1, x0: x1 + 1].sum() == fg.sum()  # every pet pixel inside
    assert fg[y0].any() and fg[y1].any() and fg[:, x0].any() and fg[:, x1].any()  # tight
    bad = pets.check_trimap_values(tri)
    assert (bad is None) == bool(np.isin(tri, [1, 2, 3]).all())


@settings.get_profile(PROFILE)
@given(st.one_of(st.binary(max_size=300),
                 st.builds(lambda cut: _JPEG[:cut], st.integers(0, 700)),
                 st.builds(lambda i, b: _JPEG[:i] + bytes([b]) + _JPEG[i + 1:], st.integers(0, 700),
                           st.integers(0, 255))))
def test_image_decode_returns_rgb_or_a_reason(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "x.jpg"
    path.write_bytes(data)
    try:
        rgb, repairs = decode_rgb(path, max_pixels=10_000)
    except ValueError as e:
        assert str(e)
        return
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.shape[0] * rgb.shape[1] > 0
    assert isinstance(repairs, list)


def _jpeg() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


_JPEG = _jpeg()

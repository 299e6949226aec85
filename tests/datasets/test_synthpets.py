"""The synthpets generator writes the real Pets layout, deterministically, with every planted quirk."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.datasets import pets
from pipeline.datasets.synthpets import generate, plan, render
from pipeline.errors import CamlocError
from pipeline.params import SynthPetsParams


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_layout_and_list_files(synthpets_raw, synthpets_params):
    sp = synthpets_params.synthpets
    ann = synthpets_raw / "annotations"
    header = [ln for ln in _lines(ann / "list.txt") if ln.startswith("#")]
    assert len(header) == 6 and header[0].startswith("#Image CLASS-ID SPECIES BREED ID")
    trainval, test = pets.read_list(ann / "trainval.txt"), pets.read_list(ann / "test.txt")
    assert len(trainval) == sp.num_classes * sp.trainval_per_class
    assert len(test) == sp.num_classes * sp.test_per_class
    assert {e.image_id for e in pets.read_list(ann / "list.txt")} == {e.image_id for e in trainval + test}
    breeds = {pets.breed_of(e.image_id) for e in trainval}
    assert breeds == set(pets.interleaved_breeds()[: sp.num_classes])
    assert {e.species for e in trainval} == {"cat", "dog"}  # both species among the first classes
    for e in trainval + test:
        assert e.species == ("cat" if e.image_id[0].isupper() else "dog")
        assert (synthpets_raw / "images" / f"{e.image_id}.jpg").is_file()
        assert (ann / "trimaps" / f"{e.image_id}.png").is_file()
    xmls = {p.stem for p in (ann / "xmls").glob("[!.]*.xml")}
    assert xmls < {e.image_id for e in trainval}  # trainval only, one planted without
    assert len({e.image_id for e in trainval} - xmls) == 1


def test_class_ids_are_alphabetical_and_contiguous(synthpets_raw):
    entries = pets.read_list(synthpets_raw / "annotations" / "list.txt")
    by_id = {e.class_id: pets.breed_of(e.image_id) for e in entries}
    assert sorted(by_id) == list(range(1, len(by_id) + 1))
    assert [by_id[i] for i in sorted(by_id)] == sorted(by_id.values(), key=str.lower)


def test_head_box_on_the_pet_and_trimap_values(synthpets_raw):
    ann = synthpets_raw / "annotations"
    sizes = set()
    for xml in sorted((ann / "xmls").glob("[!.]*.xml"))[:20]:
        size, objs = pets.parse_voc(xml.read_bytes())
        tri = np.asarray(Image.open(ann / "trimaps" / f"{xml.stem}.png"))
        assert set(np.unique(tri)) <= {1, 2, 3}
        assert tri.shape == (size[1], size[0])
        x0, y0, x1, y1 = objs[0].box
        assert 0 <= x0 < x1 <= size[0] - 1 and 0 <= y0 < y1 <= size[1] - 1
        assert tri[(y0 + y1) // 2, (x0 + x1) // 2] == pets.TRIMAP_PET
        short = min(size)
        assert 0.15 * short <= x1 - x0 + 1 <= 0.4 * short  # a large, visible head
        sizes.add(size)
    assert len(sizes) > 5 and any(w != h for w, h in sizes)


def test_class_evidence_only_on_the_head():
    """Outside the head box, images of different classes are drawn from the same distribution."""
    sp = SynthPetsParams(num_classes=2, trainval_per_class=30, test_per_class=1, min_size=64, max_size=96)
    items = [it for it in plan(sp) if it.split == "trainval" and it.quirk is None]
    outside, inside = {0: [], 1: []}, {0: [], 1: []}
    for it in items:
        rgb, _, (x0, y0, x1, y1) = render(it, sp.seed, sp.min_size, sp.max_size)
        mask = np.ones(rgb.shape[:2], bool)
        mask[y0: y1 + 1, x0: x1 + 1] = False
        outside[it.class_idx].append(rgb[mask].mean(axis=0))
        inside[it.class_idx].append(rgb[~mask].mean(axis=0))
    gap_out = np.abs(np.mean(outside[0], 0) - np.mean(outside[1], 0)).max()
    gap_in = np.abs(np.mean(inside[0], 0) - np.mean(inside[1], 0)).max()
    assert gap_in > 4 * gap_out  # the head carries the class, the rest does not


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


def test_deterministic_across_worker_counts(tmp_path):
    sp = SynthPetsParams(num_classes=2, trainval_per_class=5, test_per_class=2, min_size=48, max_size=64)
    generate(sp, tmp_path / "a", workers=1)
    generate(sp, tmp_path / "b", workers=2)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    generate(SynthPetsParams(**{**sp.__dict__, "seed": 1}), tmp_path / "c", workers=1)
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_planted_quirks_are_real(synthpets_raw, synthpets_params):
    img = synthpets_raw / "images"
    quirk = {it.quirk: img / f"{it.image_id}.jpg" for it in plan(synthpets_params.synthpets) if it.quirk}
    assert set(quirk) == {"png_as_jpg", "grayscale", "cmyk", "truncated", "gif_as_jpg", "no_xml"}
    assert quirk["png_as_jpg"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert quirk["gif_as_jpg"].read_bytes()[:4] == b"GIF8"
    assert Image.open(quirk["grayscale"]).mode == "L"
    assert Image.open(quirk["cmyk"]).mode == "CMYK"
    with pytest.raises(OSError, match="truncated"):
        Image.open(quirk["truncated"]).load()
    assert len(list(img.glob("*.mat"))) == 1
    unlisted = [it for it in plan(synthpets_params.synthpets) if it.split is None]
    assert len(unlisted) == 1 and (img / f"{unlisted[0].image_id}.jpg").is_file()
    apple = [p for p in (synthpets_raw / "annotations").rglob("._*")]
    assert len(apple) == 3 and any(p.parent.name == "xmls" for p in apple)


def test_refuses_to_replace_a_foreign_folder(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    sp = SynthPetsParams(num_classes=2, trainval_per_class=2, test_per_class=1, min_size=48, max_size=64)
    with pytest.raises(CamlocError, match="thesis.tex"):
        generate(sp, out, workers=1)
    assert (out / "thesis.tex").read_text() == "precious"
    generate(sp, tmp_path / "raw", workers=1)
    generate(sp, tmp_path / "raw", workers=1)  # a previous raw tree is replaced
    assert not list(tmp_path.glob(".camloc-tmp-*"))


def test_leftovers_of_a_killed_run_are_cleaned(tmp_path):
    stale = tmp_path / ".camloc-tmp-raw.abc123"
    (stale / "images").mkdir(parents=True)
    other = tmp_path / ".camloc-tmp-prepared.xyz"  # another stage's temporary: not ours to remove
    other.mkdir()
    sp = SynthPetsParams(num_classes=2, trainval_per_class=2, test_per_class=1, min_size=48, max_size=64)
    generate(sp, tmp_path / "raw", workers=1)
    assert not stale.exists() and other.exists() and (tmp_path / "raw" / "images").is_dir()


def _hist(pixels: np.ndarray) -> np.ndarray:
    q = (pixels // 64).astype(np.int64)  # (P, 3) → 4×4×4 colour bins
    h = np.bincount(q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2], minlength=64).astype(float)
    return h / max(h.sum(), 1)


def test_breed_is_predictable_from_the_head_only():
    """Nearest-centroid on colour histograms: near-perfect inside the head box, chance outside it."""
    sp = SynthPetsParams(num_classes=3, trainval_per_class=40, test_per_class=1, min_size=64, max_size=96)
    feats: dict[str, list] = {"head": [], "rest": []}
    labels = []
    for it in (i for i in plan(sp) if i.split == "trainval"):
        rgb, _, (x0, y0, x1, y1) = render(it, sp.seed, sp.min_size, sp.max_size)
        mask = np.zeros(rgb.shape[:2], bool)
        mask[y0: y1 + 1, x0: x1 + 1] = True
        feats["head"].append(_hist(rgb[mask]))
        feats["rest"].append(_hist(rgb[~mask]))
        labels.append(it.class_idx)
    y = np.array(labels)
    train = np.arange(len(y)) % 2 == 0
    acc = {}
    for k, f in feats.items():
        f = np.array(f)
        centroids = np.stack([f[train & (y == c)].mean(0) for c in range(3)])
        pred = np.argmin(((f[~train, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
        acc[k] = (pred == y[~train]).mean()
    assert acc["head"] >= 0.95 and acc["rest"] <= 0.6, acc

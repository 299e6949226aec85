"""`evaluate.protocols` and `evaluate.pseudo_boxes` (params.yaml) → the protocol cards evaluate@B scores
under (`pipeline.catalog.protocols`), checked once with the rest of params.py: every name registered (an
unknown one lists the valid ones), none twice, the baseline `choe2020` present (the report compares every
profile with it), and `pseudo_boxes` listed exactly when `evaluate.pseudo_boxes` names a file.
"""

from __future__ import annotations

from pipeline.catalog.protocols import BASELINE, IMAGENET, OTHER, PROTOCOLS, PSEUDO_BOXES, ProtocolCard
from pipeline.errors import ParamsError


def check_protocols(key: str, names: tuple[str, ...], pseudo_boxes: str | None) -> None:
    """ParamsError on a bad `evaluate.protocols` / `evaluate.pseudo_boxes` pair."""
    for name in names:
        if name not in PROTOCOLS:
            raise ParamsError(f"{key}.protocols", name, f"registered protocol profiles: {', '.join(PROTOCOLS.names())}")
    if len(set(names)) != len(names):
        raise ParamsError(f"{key}.protocols", list(names), "a list without repeated profiles")
    if BASELINE not in names:
        raise ParamsError(f"{key}.protocols", list(names), f"a list that includes {BASELINE} (the baseline "
                          "every other profile is compared with)")
    if (PSEUDO_BOXES in names) != bool(pseudo_boxes):
        raise ParamsError(f"{key}.pseudo_boxes", pseudo_boxes,
                          f"a localization.txt path exactly when {PSEUDO_BOXES} is in {key}.protocols "
                          f"(listed: {PSEUDO_BOXES in names})")


def cards(names: tuple[str, ...]) -> tuple[ProtocolCard, ...]:
    return tuple(PROTOCOLS.get(n) for n in names)


def dataset_family(dataset_name: str, wsol_metadata: str | None) -> str:
    """`IMAGENET` for a reference-layout dataset whose metadata folder names ILSVRC / ImageNet (the only
    family with its own published fixed τ, TS-CAM's 0.12), else `OTHER`."""
    from pipeline.catalog.datasets import DATASETS

    reference = dataset_name in DATASETS and DATASETS.get(dataset_name).raw_layout == "reference_metadata"
    text = (wsol_metadata or "").lower() if reference else ""
    return IMAGENET if ("ilsvrc" in text or "imagenet" in text) else OTHER

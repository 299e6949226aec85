"""params.yaml's `cams:` section (frozen, validated once; part of `pipeline.params`), and the map rows it
implies per backbone: each method at each of its `cams.layers` (`MapJob`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pipeline.atomic import bad_name
from pipeline.contracts import SPLITS
from pipeline.errors import ParamsError
from pipeline.paramtypes import _choice, _positive

LAST_LAYER = "last"  # cams.layers: the trunk's output (`model.features`), where every map is taken by default
LAYER_PATH = re.compile(r"[A-Za-z0-9_.-]+")  # a trunk module path, also part of the on-disk `<method>@<layer>`


@dataclass(frozen=True)
class MapJob:
    """One stored map row of cams@B: `name` (on disk and in every table) = `method`, or
    `<method>@<layer>` for a method dumped at a layer other than the last; `layers` for a fusing method."""

    name: str
    method: str
    layer: str = LAST_LAYER
    layers: tuple[str, ...] = ()


@dataclass(frozen=True)
class CamsParams:
    methods: tuple[str, ...] = ("cam", "gradcam", "center", "full")
    dtype: str = "float16"
    batch_size: int = 64
    scorecam_chunk: int = 32  # channels scored per forward pass in scorecam
    splits: tuple[str, ...] = ("val", "test", "test_official")
    max_disk_gb: float = 50.0  # refuse to start when the maps would need more
    # Trunk module paths (relative to model.features, e.g. "6" or "6.0"; "last" = the trunk's output)
    # per backbone key or per method (the method's entry wins): layered methods are dumped at each,
    # as `<method>@<layer>`; a fusing method (layercam_fused) fuses them. Default: the last layer only.
    layers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Methods dumped for one backbone key only, after cams.methods: e.g. the attention methods for a
    # transformer entry (`{vit_cpu: [cls_attention, attention_rollout, tscam]}`), which a CNN refuses.
    extra_methods: dict[str, tuple[str, ...]] = field(default_factory=dict, metadata={"omit_default": True})

    def methods_for(self, backbone_key: str) -> tuple[str, ...]:
        return (*self.methods, *self.extra_methods.get(backbone_key, ()))

    def layers_for(self, backbone_key: str, method: str) -> tuple[str, ...]:
        return self.layers.get(method) or self.layers.get(backbone_key) or (LAST_LAYER,)

    def jobs(self, backbone_key: str) -> list[MapJob]:
        """The stored rows of `backbone_key`, in cams.methods order (each method's layers in order)."""
        from pipeline.catalog.methods import METHODS

        out = []
        for m in self.methods_for(backbone_key):
            info = METHODS.get(m)
            if info.fuses_layers:
                out.append(MapJob(m, m, layers=self.layers_for(backbone_key, m)))
            elif info.layered:
                out += [MapJob(m if la == LAST_LAYER else f"{m}@{la}", m, la) for la in self.layers_for(backbone_key, m)]
            else:
                out.append(MapJob(m, m))
        return out

    def validate(self, key: str) -> None:
        if not self.methods:
            raise ParamsError(f"{key}.methods", list(self.methods), "a non-empty list of map methods")
        for m in self.methods:  # a method name becomes a file name (<method>_<kind>.npy)
            if (why := bad_name(m)) is not None:
                raise ParamsError(f"{key}.methods", m, why)
        _choice(f"{key}.dtype", self.dtype, ("float16", "float32"))
        _positive(f"{key}.batch_size", self.batch_size)
        _positive(f"{key}.scorecam_chunk", self.scorecam_chunk)
        for s in self.splits:
            _choice(f"{key}.splits", s, SPLITS)
        if not self.splits:
            raise ParamsError(f"{key}.splits", [], f"a non-empty list of {', '.join(SPLITS)}")
        for name in ("methods", "splits"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ParamsError(f"{key}.{name}", list(values), "a list without repeated entries")
        _positive(f"{key}.max_disk_gb", self.max_disk_gb)
        for k, extra in self.extra_methods.items():
            for m in extra:
                if (why := bad_name(m)) is not None:
                    raise ParamsError(f"{key}.extra_methods.{k}", m, why)
            if not extra or len(set((*self.methods, *extra))) != len(self.methods) + len(extra):
                raise ParamsError(f"{key}.extra_methods.{k}", list(extra),
                                  "a non-empty list of methods, without repeats and not already in cams.methods")
        for k, paths in self.layers.items():
            if not paths or len(set(paths)) != len(paths):
                raise ParamsError(f"{key}.layers.{k}", list(paths), "a non-empty list of trunk paths without repeats")
            for la in paths:
                if not LAYER_PATH.fullmatch(la):
                    raise ParamsError(f"{key}.layers.{k}", la, "a trunk module path (letters, digits, _ . -), "
                                      "e.g. '6' or '6.0', or 'last'")

"""params.yaml → frozen dataclasses, validated once before any work, for every stage's CLI command.

Unknown keys, wrong types and bad values raise `ParamsError` naming the key (dotted path), the value
and what would be valid. Stages call `load_params()` and pass the typed objects down; nothing reads
raw dicts after this point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipeline.atomic import bad_name
from pipeline.camsparams import LAST_LAYER, CamsParams, MapJob  # noqa: F401 (public API)
from pipeline.catalog.layouts import validate_scoring
from pipeline.catalog.protocols import DEFAULT_PROFILES
from pipeline.catalog.wsol import DEFAULT_METHOD
from pipeline.contracts import SPLITS
from pipeline.errors import CamlocError, ParamsError
from pipeline.paramchecks import arch_of, check_names, check_requirements  # noqa: F401 (public API)
from pipeline.paramtypes import _choice, _positive, parse, to_dict  # noqa: F401 (parse, to_dict: public API)
from pipeline.protocolparams import check_protocols

# step: x0.1 after every step_epochs epochs; reference_step: x0.1 from epoch step_epochs, 2*step_epochs, ...
# (1-based), as the reference's adjust_learning_rate, i.e. one epoch earlier than step.
SCHEDULES = ("cosine", "step", "reference_step", "constant")
TRAIN_TRANSFORMS = ("random_resized_crop", "resize_crop")


@dataclass(frozen=True)
class WsolDatasetParams:
    """A dataset in the reference's (Choe et al. 2020) metadata layout, for `dataset.name: wsol`."""

    metadata: str | None = None  # folder with train/ val/ test/ (image_ids.txt, class_labels.txt, ...)
    root: str | None = None  # folder the image ids are relative to
    mask_root: str | None = None  # folder the mask paths of localization.txt are relative to (default: root)


@dataclass(frozen=True)
class CubParams:
    # The official record of CUB-200-2011 (archive MD5 97eceeb196236b17998738112f37df78).
    url: str = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz?download=1"
    val_per_class: int = 5  # boxed images per class carved from the official train split to choose tau
    seed: int = 0

    def validate(self, key: str) -> None:
        _positive(f"{key}.val_per_class", self.val_per_class)
        if not self.url.startswith(("http://", "https://")):
            raise ParamsError(f"{key}.url", self.url, "an http(s) URL of CUB_200_2011.tgz")


@dataclass(frozen=True)
class DatasetParams:
    name: str = "synthpets"
    # Folder that already holds the dataset's archives (offline runs of `pets` and `cub`).
    archives: str | None = None
    base_url: str = "https://www.robots.ox.ac.uk/~vgg/data/pets/data/"
    # Decompression-bomb guard: images with more pixels are skipped and reported.
    max_image_pixels: int = 40_000_000
    cub: CubParams = field(default_factory=CubParams)
    wsol: WsolDatasetParams = field(default_factory=WsolDatasetParams)

    def validate(self, key: str) -> None:
        from pipeline.catalog.datasets import DATASETS

        _choice(f"{key}.name", self.name, tuple(DATASETS.names()))
        _positive(f"{key}.max_image_pixels", self.max_image_pixels)
        for required in DATASETS.get(self.name).requires:  # e.g. wsol: wsol.metadata, wsol.root
            value = self
            for part in required.split("."):
                value = getattr(value, part)
            if not value:
                raise ParamsError(f"{key}.{required}", value,
                                  f"a folder path (dataset.name is {self.name}; README 'Datasets in the "
                                  "reference layout' says what it holds)")


@dataclass(frozen=True)
class SynthPetsParams:
    num_classes: int = 6
    trainval_per_class: int = 300  # official "trainval" images per class
    test_per_class: int = 60  # official "test" images per class
    min_size: int = 112  # shorter/longer image sides are drawn from [min_size, max_size]
    max_size: int = 176
    seed: int = 0
    workers: int = 2  # generator processes (the bytes written do not depend on it)

    def validate(self, key: str) -> None:
        if not 2 <= self.num_classes <= 37:
            raise ParamsError(f"{key}.num_classes", self.num_classes, "an integer from 2 to 37 (Pets breeds)")
        _positive(f"{key}.trainval_per_class", self.trainval_per_class)
        _positive(f"{key}.test_per_class", self.test_per_class)
        if self.min_size < 32:
            raise ParamsError(f"{key}.min_size", self.min_size, "at least 32 pixels")
        if self.max_size < self.min_size:
            raise ParamsError(f"{key}.max_size", self.max_size, f">= min_size ({self.min_size})")
        _positive(f"{key}.workers", self.workers)


@dataclass(frozen=True)
class SplitParams:
    val_per_class: int = 5  # boxed images per class held out to choose tau
    test_per_class: int = 30  # boxed images per class for head-box metrics
    seed: int = 0

    def validate(self, key: str) -> None:
        _positive(f"{key}.val_per_class", self.val_per_class)
        _positive(f"{key}.test_per_class", self.test_per_class)


@dataclass(frozen=True)
class PrepareParams:
    cache_size: int = 128  # side of the decoded, straight-resized uint8 image cache
    workers: int = 2

    def validate(self, key: str) -> None:
        if self.cache_size < 16:
            raise ParamsError(f"{key}.cache_size", self.cache_size, "at least 16 pixels")
        _positive(f"{key}.workers", self.workers)


@dataclass(frozen=True)
class AugmentParams:
    hflip: bool = True
    scale_min: float = 0.6  # random-resized-crop area range [scale_min, 1]

    def validate(self, key: str) -> None:
        if not 0 < self.scale_min <= 1:
            raise ParamsError(f"{key}.scale_min", self.scale_min, "a number in (0, 1]")


@dataclass(frozen=True)
class WsolParams:
    """`backbones.<key>.wsol`: the training method (pipeline/catalog/wsol.py) and its full hyperparameter
    set, the reference's defaults filled in. Written as one flat mapping in params.yaml:
    `wsol: {method: has, has_grid_size: 4}`."""

    method: str = DEFAULT_METHOD
    hyperparameters: dict[str, int | float] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: dict, key: str) -> WsolParams:
        from pipeline.catalog.wsol import DEFAULT_METHOD, WSOL_METHODS, resolve

        method = data.get("method", DEFAULT_METHOD)
        if method not in WSOL_METHODS:
            raise ParamsError(f"{key}.method", method, f"a WSOL training method: {', '.join(WSOL_METHODS.names())}")
        given = {str(k): v for k, v in data.items() if k != "method"}
        return cls(method, resolve(method, given, key))

    def __getitem__(self, name: str) -> int | float:
        return self.hyperparameters[name]

    def as_flat(self) -> dict:
        """The params.yaml form (and checkpoint meta's `wsol`): {method: ..., <hyperparameter>: value}."""
        return {"method": self.method, **self.hyperparameters}


@dataclass(frozen=True)
class BackboneParams:
    arch: str = ""  # registry name; empty means the backbones-dict key
    epochs: int = 3
    batch_size: int = 32
    lr: float = 0.01
    head_lr_mult: float = 10.0  # the reference gives the classifier head 10x the trunk's lr
    weight_decay: float = 5e-4
    momentum: float = 0.9
    optimizer: str = "sgd"
    schedule: str = "cosine"  # cosine (per step, to 0) | step / reference_step (x0.1 every step_epochs) | constant
    step_epochs: int = 30
    image_size: int = 128
    pretrained: bool = False
    weights: str | None = None  # torchvision weights name (e.g. IMAGENET1K_V1) or a local file path
    # a local `weights` file must fit the trunk exactly (only the head may differ); false: load what fits,
    # and a WARNING counts the trunk tensors dropped (trained from scratch)
    weights_strict: bool = field(default=True, metadata={"omit_default": True})
    weights_layout: str | None = field(default=None, metadata={"omit_default": True})  # epochs: 0 (catalog/layouts)
    output_stride: int | None = None  # 8/16/32: ResNet "large feature map" variants
    large_feature_map: bool | None = None  # the reference's *_wsol models: 28x28 instead of 14x14 maps at 224
    # random_resized_crop: a crop of random area/aspect resized to image_size (camloc's default);
    # resize_crop: the reference's — straight resize to train_resize, then a random image_size crop.
    train_transform: str = "random_resized_crop"
    train_resize: int | None = None  # resize_crop's side before cropping; None: the cache as is (cache_size)
    nesterov: bool = False  # SGD Nesterov momentum (the reference trains with it)
    augment: AugmentParams = field(default_factory=AugmentParams)
    workers: int = 2
    resume: bool = False  # resume from the last epoch checkpoint after an interruption
    nproc: int = 1  # processes on this node: train@/cams@ relaunch themselves under torchrun when > 1
    sync_bn: bool = False  # BatchNorm statistics over the global batch (GPUs only); else per process
    wsol: WsolParams = field(default_factory=WsolParams)  # training method (`camloc wsol-methods`)

    def validate(self, key: str) -> None:
        validate_scoring(self, key)  # epochs >= 0; epochs: 0 scores the weights file (pipeline/catalog/layouts.py)
        _positive(f"{key}.batch_size", self.batch_size)
        for name in ("lr", "head_lr_mult"):
            _positive(f"{key}.{name}", getattr(self, name))
        if self.weight_decay < 0:
            raise ParamsError(f"{key}.weight_decay", self.weight_decay, "a number >= 0")
        _choice(f"{key}.optimizer", self.optimizer, ("sgd", "adamw"))
        _choice(f"{key}.schedule", self.schedule, SCHEDULES)
        _choice(f"{key}.train_transform", self.train_transform, TRAIN_TRANSFORMS)
        if self.train_resize is not None:
            if self.train_transform != "resize_crop":
                raise ParamsError(f"{key}.train_resize", self.train_resize, "null unless train_transform: resize_crop")
            if self.train_resize < self.image_size:
                raise ParamsError(f"{key}.train_resize", self.train_resize, f">= image_size ({self.image_size})")
        if self.nesterov and self.optimizer != "sgd":
            raise ParamsError(f"{key}.nesterov", self.nesterov, "false unless optimizer: sgd")
        _positive(f"{key}.step_epochs", self.step_epochs)
        if self.image_size < 16:
            raise ParamsError(f"{key}.image_size", self.image_size, "at least 16 pixels")
        if self.output_stride is not None:
            _choice(f"{key}.output_stride", self.output_stride, (8, 16, 32))
        if self.workers < 0:
            raise ParamsError(f"{key}.workers", self.workers, "an integer >= 0")
        _positive(f"{key}.nproc", self.nproc)
        if self.batch_size % self.nproc:  # batch_size is the global batch: each process takes an equal share
            raise ParamsError(f"{key}.batch_size", self.batch_size,
                              f"a multiple of {key}.nproc ({self.nproc}): it is the global batch, split "
                              f"evenly over the processes")


@dataclass(frozen=True)
class EvaluateParams:
    interval: float = 0.01  # tau grid: np.arange(0, 1, interval)
    fixed_tau: float = 0.2  # GT-known / Top-1 Loc threshold (the CAM paper's rule)
    iou_thresholds: tuple[int, ...] = (30, 50, 70)  # delta, in percent, for MaxBoxAccV2
    pointing_tolerance: float = 15.0  # pointing game: a hit within this many pixels of the S×S frame
    protocols: tuple[str, ...] = DEFAULT_PROFILES  # protocol profiles scored (pipeline/protocolparams.py)
    pseudo_boxes: str | None = None  # val pseudo-boxes (localization.txt) of the pseudo_boxes profile

    def validate(self, key: str) -> None:
        check_protocols(key, self.protocols, self.pseudo_boxes)
        if not 1e-4 <= self.interval < 1:  # metrics.boxes.MIN_INTERVAL: finer grids grow memory without bound
            raise ParamsError(f"{key}.interval", self.interval, "a number in [0.0001, 1), e.g. 0.01 or 0.001 "
                              "(each image keeps 1/interval IoUs: 1e-9 would need 7.45 GiB)")
        if not 0 <= self.fixed_tau < 1:
            raise ParamsError(f"{key}.fixed_tau", self.fixed_tau, "a number in [0, 1)")
        for d in self.iou_thresholds:
            if not 0 < d <= 100:
                raise ParamsError(f"{key}.iou_thresholds", d, "percentages in (0, 100]")
        if self.pointing_tolerance < 0:
            raise ParamsError(f"{key}.pointing_tolerance", self.pointing_tolerance, "pixels >= 0 (15 is usual)")


@dataclass(frozen=True)
class FaithfulnessParams:
    max_images: int = 48  # images per split (a seeded subset): 2·steps forward passes each per method
    steps: int = 16  # deletion / insertion curves: pixels removed or inserted in this many equal steps
    splits: tuple[str, ...] = ("test",)  # splits to run on; the stage refuses one cams.splits did not dump
    batch_size: int = 64  # model inputs per forward pass (several images × steps); 64 beat 256 on 2 CPU cores
    seed: int = 0  # the subset, the tie-breaking pixel order and ROAD's noise
    road_max_images: int = 48  # ROAD on a seeded subset of the subset (18 imputations + passes each); 0: off

    def validate(self, key: str) -> None:
        _positive(f"{key}.max_images", self.max_images)
        if self.steps < 2:
            raise ParamsError(f"{key}.steps", self.steps, "an integer >= 2 (32 is usual)")
        _positive(f"{key}.batch_size", self.batch_size)
        if self.road_max_images < 0:
            raise ParamsError(f"{key}.road_max_images", self.road_max_images, "an integer >= 0 (0: no ROAD)")
        if not self.splits:
            raise ParamsError(f"{key}.splits", [], f"a non-empty list of {', '.join(SPLITS)}")
        for s in self.splits:
            _choice(f"{key}.splits", s, SPLITS)
        if len(set(self.splits)) != len(self.splits):
            raise ParamsError(f"{key}.splits", list(self.splits), "a list without repeated entries")


@dataclass(frozen=True)
class ReportParams:
    bootstrap: int = 1000  # resamples for the 95% confidence intervals
    seed: int = 0
    gallery_samples: int = 8  # seeded random images per backbone page
    gallery_extremes: int = 4  # best and worst IoUs shown per backbone and method

    def validate(self, key: str) -> None:
        if self.bootstrap < 100:  # fewer resamples make the 2.5/97.5 percentiles meaningless
            raise ParamsError(f"{key}.bootstrap", self.bootstrap, "at least 100 resamples (1000 is usual)")
        for name in ("gallery_samples", "gallery_extremes"):
            if getattr(self, name) < 0:
                raise ParamsError(f"{key}.{name}", getattr(self, name), "an integer >= 0 (0 leaves it out)")


@dataclass(frozen=True)
class Params:
    seed: int = 0
    dataset: DatasetParams = field(default_factory=DatasetParams)
    synthpets: SynthPetsParams = field(default_factory=SynthPetsParams)
    split: SplitParams = field(default_factory=SplitParams)
    prepare: PrepareParams = field(default_factory=PrepareParams)
    backbones: dict[str, BackboneParams] = field(default_factory=dict)
    cams: CamsParams = field(default_factory=CamsParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    report: ReportParams = field(default_factory=ReportParams)
    faithfulness: FaithfulnessParams = field(default_factory=FaithfulnessParams)

    def validate(self, key: str) -> None:
        if not self.backbones:
            raise ParamsError("backbones", {}, "at least one backbone entry")
        for name in self.backbones:  # a key becomes folder and file names under data/ and reports/
            if (why := bad_name(name)) is not None:
                raise ParamsError(f"backbones.{name}", name, f"a key of {why}")

    def backbone(self, name: str) -> BackboneParams:
        if name not in self.backbones:
            raise ParamsError("backbones", name, f"one of the keys {', '.join(sorted(self.backbones))}")
        return self.backbones[name]


# --------------------------------------------------------------------------------------------------
# Loading and the cross-section checks (the generic dict → dataclass conversion is paramtypes.py).


def load_params(path: str | Path = "params.yaml", check_registries: bool = True) -> Params:
    """Read and validate params.yaml; raises ParamsError (exit code 2 at the CLI) on any bad value."""
    path = Path(path)
    if not path.is_file():
        raise CamlocError(f"no params file at {path}: run from the repository root or pass --params FILE")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ParamsError(str(path), "<unparseable>", f"valid YAML ({e})") from None
    params = parse(Params, raw, "")
    if check_registries:
        check_names(params)
    return params

"""The WSOL training-method registry, torch-free: what params validation, `camloc wsol-methods`, the
train stage's dispatch and the report need to know of a method without building it.

Hyperparameter names and defaults are those of Choe et al.'s reference (clovaai/wsolevaluation,
config.py), so a recipe from the paper can be copied into params.yaml key for key. Each backbone entry of
params.yaml picks one method: `wsol: {method: adl, adl_drop_rate: 0.5}`; missing hyperparameters take
the defaults below, unknown ones are refused (pipeline.params).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Literal

from pipeline.catalog.registry import Registry

Number = int | float


@dataclass(frozen=True)
class WsolMethodInfo:
    """A registry entry. `supervision` says what train@B learns from: image labels, or boxes (fsl).

    `impl` names the method object (pipeline/wsol/method.py: `build` and `loss`) that train@B and the
    rebuild of a trained model call; `hooks` are the backbone-card fields it needs non-empty, with what
    they are (params validation refuses a backbone without them); `one_process` says why it cannot train
    under DDP (empty: it can); `trainer` names its own train-stage body when it has its own loop (fsl)."""

    name: str
    paper: str  # short citation
    summary: str  # one line for `camloc wsol-methods`: what the method changes in training / inference
    defaults: Mapping[str, Number]  # hyperparameter name → default; an int default means an int is required
    supervision: Literal["labels", "boxes"] = "labels"
    # Closed ranges [lo, hi] the hyperparameters must lie in (None: unbounded on that side).
    ranges: Mapping[str, tuple[Number | None, Number | None]] = field(default_factory=dict)
    impl: str = ""  # "module:attribute" of the method object; default pipeline.wsol.method:CAM
    hooks: tuple[tuple[str, str], ...] = ()  # (BackboneInfo field, what it holds), e.g. ("adl_points", ...)
    one_process: str = ""  # why it trains in one process only ("" = DDP is fine)
    trainer: str = ""  # "module:function" (params, paths, backbone_key, resume_from, on_epoch_end) -> summary

    def __post_init__(self) -> None:
        if not self.impl:
            object.__setattr__(self, "impl", "pipeline.wsol.method:CAM")


WSOL_METHODS: Registry[WsolMethodInfo] = Registry("WSOL training method")
DEFAULT_METHOD = "cam"  # a backbone entry without `wsol:` (and a model folder without it) trains with it

_UNIT = (0.0, 1.0)


def _register(info: WsolMethodInfo) -> None:
    frozen = replace(info, defaults=MappingProxyType(dict(info.defaults)), ranges=MappingProxyType(dict(info.ranges)))
    WSOL_METHODS.add(info.name, frozen)


_register(WsolMethodInfo(
    "cam", "Zhou et al., Learning Deep Features for Discriminative Localization, CVPR 2016",
    "vanilla CAM training: cross-entropy on image labels, nothing added (the baseline)", {}))
_register(WsolMethodInfo(
    "has", "Singh & Lee, Hide-and-Seek, ICCV 2017",
    "hides each has_grid_size×has_grid_size-pixel cell of the input with probability has_drop_rate in training",
    {"has_grid_size": 4, "has_drop_rate": 0.5},
    ranges={"has_grid_size": (1, None), "has_drop_rate": _UNIT}, impl="pipeline.wsol.augment:HAS"))
_register(WsolMethodInfo(
    "acol", "Zhang et al., Adversarial Complementary Learning, CVPR 2018",
    "second classifier on features erased where the first one's map >= acol_threshold; maps: max of both",
    {"acol_threshold": 0.7}, ranges={"acol_threshold": _UNIT}, impl="pipeline.wsol.acol:METHOD",
    one_process="its loss calls the two heads directly, outside DDP's forward"))
_register(WsolMethodInfo(
    "spg", "Zhang et al., Self-produced Guidance, ECCV 2018",
    "auxiliary pixel losses on seeds the network produces itself (high/low threshold pairs 1-3); "
    "maps from the classification branch",
    {"spg_threshold_1h": 0.7, "spg_threshold_1l": 0.01, "spg_threshold_2h": 0.5,
     "spg_threshold_2l": 0.05, "spg_threshold_3h": 0.7, "spg_threshold_3l": 0.1},
    ranges={f"spg_threshold_{i}{hl}": _UNIT for i in (1, 2, 3) for hl in "hl"}, impl="pipeline.wsol.spg:METHOD",
    hooks=(("spg_taps", "two SPG tap outputs"),),
    one_process="its loss calls the trunk and branches directly, outside DDP's forward"))
_register(WsolMethodInfo(
    "adl", "Choe & Shim, Attention-based Dropout Layer, CVPR 2019",
    "ADL layers in the trunk: per batch, drop mask (prob. adl_drop_rate) or importance map; identity at inference",
    {"adl_drop_rate": 0.75, "adl_threshold": 0.9},
    ranges={"adl_drop_rate": _UNIT, "adl_threshold": _UNIT}, impl="pipeline.wsol.adl:METHOD",
    hooks=(("adl_points", "ADL insertion points"),)))
_register(WsolMethodInfo(
    "cutmix", "Yun et al., CutMix, ICCV 2019",
    "with prob. cutmix_prob pastes a Beta(cutmix_beta)-sized box of another image; labels area-weighted",
    {"cutmix_beta": 1.0, "cutmix_prob": 1.0},
    ranges={"cutmix_beta": (1e-6, None), "cutmix_prob": _UNIT}, impl="pipeline.wsol.augment:CUTMIX"))
_register(WsolMethodInfo(
    "fsl", "Choe et al., Evaluating Weakly Supervised Object Localization Methods Right, CVPR 2020",
    "few-shot fully supervised baseline: a foreground map learnt from the val boxes only, "
    "its tau and hyperparameters chosen by k-fold cross-validation inside val",
    {"fsl_folds": 5}, supervision="boxes", ranges={"fsl_folds": (2, None)}, impl="pipeline.wsol.fsl:METHOD",
    one_process="it fits a few val images", trainer="pipeline.wsol.fsl:train_fsl"))

_register(WsolMethodInfo(
    "tscam", "Gao et al., TS-CAM: Token Semantic Coupled Attention Map, ICCV 2021",
    "transformers only: 3x3 conv head on the token grid to class maps, GAP; "
    "maps: summed class-token attention x class map", {}, impl="pipeline.wsol.tscam:METHOD",
    hooks=(("attention", "attention weights (a transformer)"),)))


def resolve(method: str, given: Mapping[str, object], key: str) -> dict[str, Number]:
    """The full hyperparameter set of `method`: `given` over the defaults, each checked.

    Raises pipeline.errors.ParamsError naming `key.<name>`; `key` is the dotted params path of the
    `wsol` mapping. Imported lazily by pipeline.params so this module stays dependency-free.
    """
    from pipeline.errors import ParamsError

    info = WSOL_METHODS.get(method)
    out: dict[str, Number] = dict(info.defaults)
    for name, value in given.items():
        if name not in info.defaults:
            valid = ", ".join(sorted(info.defaults)) or "none"
            raise ParamsError(f"{key}.{name}", value,
                              f"a hyperparameter of WSOL method {method!r} (it takes: {valid})")
        default = info.defaults[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParamsError(f"{key}.{name}", value, "an integer" if isinstance(default, int) else "a number")
        if isinstance(default, int) and not isinstance(value, int):
            raise ParamsError(f"{key}.{name}", value, "an integer")
        if value != value:
            raise ParamsError(f"{key}.{name}", value, "a finite number")
        out[name] = value if isinstance(default, int) else float(value)
    for name, (lo, hi) in info.ranges.items():
        v = out[name]
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            want = (f"a number in [{lo}, {hi}]" if lo is not None and hi is not None
                    else f"a number >= {lo}" if lo is not None else f"a number <= {hi}")
            raise ParamsError(f"{key}.{name}", v, want)
    return out

"""The cross-section checks of params.yaml against the registries (pipeline/catalog/), run once after
parsing (`params.load_params`): registered names, what each backbone needs of its image size, and which
map and WSOL methods each backbone can run. Apart from params.py's typed sections so that those stay
the shape of params.yaml; `params` below is a validated `pipeline.params.Params`."""

from __future__ import annotations

import logging

from pipeline.errors import ParamsError

log = logging.getLogger(__name__)


def arch_of(key: str, bp) -> str:
    """The registered backbone a `backbones.<key>` entry builds: its `arch`, or the key itself."""
    return bp.arch or key


def check_requirements(params) -> None:
    """Each backbone's map methods (cams.methods and its cams.extra_methods) are ones it can run: an
    attention method (MethodInfo.requires) only on a backbone whose card exposes attention."""
    from pipeline.catalog.backbones import BACKBONES
    from pipeline.catalog.methods import METHODS

    for key, bp in params.backbones.items():
        arch = arch_of(key, bp)
        for m in params.cams.methods_for(key):
            if not METHODS.get(m).runs_on(BACKBONES.get(arch)):
                need = METHODS.get(m).requires
                where = "cams.methods" if m in params.cams.methods else f"cams.extra_methods.{key}"
                raise ParamsError(where, m, f"a method backbone {key} ({arch}) can run: {m} needs {need} weights, "
                                  f"which {arch} has not (a CNN); list it under cams.extra_methods.<transformer key>")


def check_names(params) -> None:
    """Registry names (backbones, methods) and what each backbone needs of its image size."""
    from pipeline.catalog.backbones import BACKBONES
    from pipeline.catalog.methods import METHODS
    from pipeline.catalog.wsol import WSOL_METHODS

    for key, bp in params.backbones.items():
        arch = arch_of(key, bp)
        if arch not in BACKBONES:
            raise ParamsError(
                f"backbones.{key}.arch", arch, f"a registered backbone: {', '.join(BACKBONES.names())}"
            )
        if bp.large_feature_map is not None and "large_feature_map" not in BACKBONES.get(arch).options:
            takers = [n for n in BACKBONES.names() if "large_feature_map" in BACKBONES.get(n).options]
            raise ParamsError(f"backbones.{key}.large_feature_map", bp.large_feature_map,
                              f"null for {arch}; only {', '.join(takers)} take it")
        divisor = BACKBONES.get(arch).size_divisor
        if bp.image_size % divisor:
            raise ParamsError(
                f"backbones.{key}.image_size", bp.image_size, f"a multiple of {divisor} for {arch}"
            )
        method, info = bp.wsol.method, BACKBONES.get(arch)
        for field_name, what in WSOL_METHODS.get(method).hooks:  # the backbone-card fields the method needs
            if not getattr(info, field_name, ()):
                raise ParamsError(
                    f"backbones.{key}.wsol.method", method,
                    f"a method {arch} supports: it declares no {what} "
                    f"(BackboneInfo.{field_name} in its card, {BACKBONES.origin(arch)})",
                )
        if bp.image_size > params.prepare.cache_size:
            raise ParamsError(
                f"backbones.{key}.image_size",
                bp.image_size,
                f"at most prepare.cache_size ({params.prepare.cache_size}); raise the cache size",
            )
        if (bp.train_resize or 0) > params.prepare.cache_size:
            raise ParamsError(f"backbones.{key}.train_resize", bp.train_resize,
                              f"at most prepare.cache_size ({params.prepare.cache_size}): set the cache to it")
    for m in params.cams.methods:
        if m not in METHODS:
            raise ParamsError("cams.methods", m, f"registered map methods: {', '.join(METHODS.names())}")
    for k, extra in params.cams.extra_methods.items():
        if k not in params.backbones:  # a recipe's `-S ~backbones` drops the backbone, not its extra methods
            log.warning("cams.extra_methods.%s names no entry of backbones (%s): its methods %s are not dumped",
                        k, ", ".join(params.backbones), ", ".join(extra))
        for m in extra:
            if m not in METHODS:
                raise ParamsError(f"cams.extra_methods.{k}", m, f"registered map methods: {', '.join(METHODS.names())}")
    check_requirements(params)
    takers = [m for m in params.cams.methods if METHODS.get(m).layered or METHODS.get(m).fuses_layers]
    for k in params.cams.layers:
        if k in params.backbones and k in METHODS:
            raise ParamsError(f"cams.layers.{k}", k, "a key that is not both a backbone key and a map method")
        if k not in params.backbones and k not in takers:
            raise ParamsError(f"cams.layers.{k}", k, f"a backbone key ({', '.join(params.backbones)}) or a method "
                              f"of cams.methods that takes layers ({', '.join(takers) or 'none listed'})")

"""`python -m pipeline` for the multi-process tests, run by torchrun as a script, with two test-only additions:

- backbone `nobn_gap_cnn`: tiny_gap_cnn's layers without BatchNorm, so that N processes must train the
  very model one process trains (BatchNorm statistics are per process by design);
- `CAMLOC_TEST_DIE_AT=<rank>:<epoch>`: that rank exits with code 3 when it starts that epoch (0-based),
  after the previous epoch's resume checkpoint is on disk: a rank dying mid-stage.
"""

from __future__ import annotations

import contextlib
import os
import sys

from torch import nn

from pipeline.catalog.backbones import BACKBONES, BackboneInfo
from pipeline.models import backbones

NOBN = "nobn_gap_cnn"


def _nobn_trunk(_: None) -> nn.Module:
    widths = [(3, 32, 2), (32, 32, 1), (32, 64, 2), (64, 64, 1), (64, 128, 2), (128, 128, 1)]
    return nn.Sequential(*[m for cin, cout, s in widths for m in (nn.Conv2d(cin, cout, 3, s, 1), nn.ReLU())])


@contextlib.contextmanager
def nobn_backbone():
    """`nobn_gap_cnn` in the registry while the block runs (tests in this process stay unaffected)."""
    BACKBONES.register(NOBN)(BackboneInfo(NOBN, "tiny_gap_cnn without BatchNorm (tests)", 8, 128, None, "nobn"))
    backbones.TRUNKS["nobn"] = _nobn_trunk
    try:
        yield
    finally:
        BACKBONES._entries.pop(NOBN, None)
        backbones.TRUNKS.pop("nobn", None)


def _die_hook() -> None:
    spec = os.environ.get("CAMLOC_TEST_DIE_AT")
    if not spec:
        return
    rank, epoch = map(int, spec.split(":"))
    if int(os.environ.get("RANK", "0")) != rank:
        return
    from pipeline.stages import train

    real = train.train_epoch

    def train_epoch(net, batches, *args, **kwargs):
        if batches.batch_sampler.epoch == epoch:
            os._exit(3)
        return real(net, batches, *args, **kwargs)

    train.train_epoch = train_epoch


if __name__ == "__main__":
    from pipeline.cli import cli

    _die_hook()
    with nobn_backbone():
        cli.main(args=sys.argv[1:], prog_name="camloc")

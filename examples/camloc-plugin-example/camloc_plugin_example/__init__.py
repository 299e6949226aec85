"""The cards of the example plugin, registered when camloc discovers the entry point (torch-free: every
implementation is named by an `impl` string and imported only when used)."""

from pipeline.catalog.backbones import BACKBONES, BackboneInfo
from pipeline.catalog.datasets import DATASETS, DatasetCard
from pipeline.catalog.methods import METHODS, MethodInfo
from pipeline.catalog.wsol import WSOL_METHODS, WsolMethodInfo

BACKBONES.add("conv_head_cnn", BackboneInfo(
    "conv_head_cnn", "example plugin: 3-stage CNN whose classifier is a 1x1 conv (as the reference's InceptionV3)",
    size_divisor=8, channels=64, impl="camloc_plugin_example.backbone:build",
    adl_points=("stage2", "stage3"), spg_taps=("stage2", "stage3")))

METHODS.add("contrastive_cam", MethodInfo(
    "contrastive_cam", "example plugin: CAM of the class minus the mean CAM over all classes",
    impl="camloc_plugin_example.maps:contrastive_cam"))

WSOL_METHODS.add("random_erasing", WsolMethodInfo(
    "random_erasing", "Zhong et al., Random Erasing Data Augmentation, AAAI 2020",
    "example plugin: with prob. re_prob erases one rectangle (up to re_area_max of the image) per training image",
    {"re_prob": 0.5, "re_area_max": 0.4}, ranges={"re_prob": (0.0, 1.0), "re_area_max": (0.02, 1.0)},
    impl="camloc_plugin_example.erasing:METHOD"))

DATASETS.add("csv_folder", DatasetCard(
    "csv_folder", "example plugin: a folder of images with boxes.csv (image,label,split,x0,y0,x1,y1)",
    "camloc_plugin_example.dataset:fetch", raw_layout="reference_metadata", requires=("archives",)))

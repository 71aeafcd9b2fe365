"""Models: any keras.applications backbone as one flat classifier graph, and the zoo.

``build_classifier`` wires ``image -> augment -> preprocess -> backbone layers -> head``
into a single functional model: no nested sub-model, so Grad-CAM tools can reach every
layer by name. Each backbone gets its own input scaling inside the model, so a saved
model takes raw 0..255 RGB images and nobody has to remember how to preprocess.

:data:`ZOO` holds the 20 backbones of Garg et al. (2022) and three newer references;
:func:`zoo_table` reads their parameters, multiply-accumulates and native resolution off
the Keras models, :func:`efficientnet_scaling` the compound scaling of B0 to B7.
"""

from __future__ import annotations

import dataclasses
import math
import time

import keras
import numpy as np
import pandas as pd
from keras import ops

from .errors import CourseError

__all__ = [
    "HEAD_LAYERS",
    "INPUT_LAYERS",
    "Backbone",
    "BACKBONES",
    "get_backbone",
    "BackbonePreprocessing",
    "RandomAffine",
    "CUSTOM_LAYERS",
    "build_classifier",
    "use_fast_batchnorm_statistics",
    "load_backbone_weights",
    "backbone_layers",
    "stage_prefix",
    "default_fine_tune_layers",
    "set_trainable_stage",
    "count_trainable_parameters",
    "is_flat",
    "last_feature_layer",
    "ALPHA",
    "BETA",
    "GAMMA",
    "EFFICIENTNETS",
    "PAPER_MODELS",
    "MODERN_REFERENCES",
    "ZOO",
    "MODEL_GROUPS",
    "resolve_models",
    "model_family",
    "describe_backbone",
    "zoo_table",
    "efficientnet_scaling",
    "flat_layers",
    "layer_costs",
    "count_macs",
]

HEAD_LAYERS = ("head_pool", "head_dropout", "head_logits", "predictions")
INPUT_LAYERS = ("image", "augment", "preprocess")


@dataclasses.dataclass(frozen=True)
class Backbone:
    """A keras.applications constructor with its input scaling and native resolution."""

    name: str  # as keras.applications spells it
    preprocessing: str  # "caffe", "tf", "torch" or "none" (the model scales inputs itself)
    native_size: int  # px of the ImageNet training resolution (Keras documentation)
    min_size: int = 32

    @property
    def constructor(self):
        return getattr(keras.applications, self.name)


_BACKBONE_LIST = [
    Backbone("ResNet50", "caffe", 224),
    Backbone("ResNet50V2", "tf", 224),
    Backbone("ResNet101V2", "tf", 224),
    Backbone("ResNet152V2", "tf", 224),
    Backbone("DenseNet121", "torch", 224),
    Backbone("DenseNet169", "torch", 224),
    Backbone("DenseNet201", "torch", 224),
    Backbone("InceptionV3", "tf", 299, min_size=75),
    Backbone("InceptionResNetV2", "tf", 299, min_size=75),
    Backbone("Xception", "tf", 299, min_size=71),
    Backbone("VGG16", "caffe", 224),
    Backbone("VGG19", "caffe", 224),
    Backbone("MobileNetV2", "tf", 224),
    *[
        Backbone(f"EfficientNetB{i}", "none", size)
        for i, size in enumerate((224, 240, 260, 300, 380, 456, 528, 600))
    ],
    Backbone("EfficientNetV2B0", "none", 224),
    Backbone("EfficientNetV2S", "none", 384),
    Backbone("ConvNeXtTiny", "none", 224),
]
BACKBONES = {b.name.lower(): b for b in _BACKBONE_LIST}


def get_backbone(name: str) -> Backbone:
    """Look a backbone up by its keras.applications name, case-insensitively."""
    key = name.replace("-", "").replace("_", "").lower()
    if key not in BACKBONES:
        raise CourseError(
            f"Unknown backbone {name!r}. Choose one of: {', '.join(b.name for b in _BACKBONE_LIST)}."
        )
    return BACKBONES[key]


@keras.saving.register_keras_serializable(package="covid_tutorial")
class BackbonePreprocessing(keras.layers.Layer):
    """Each keras.applications family's own input scaling, from raw 0..255 RGB.

    caffe: RGB->BGR and ImageNet mean subtraction (ResNet50, VGG); tf: scale to [-1, 1]
    (ResNetV2, Inception, Xception, MobileNet); torch: 0..1 then ImageNet mean/std
    (DenseNet); none: the backbone rescales by itself (EfficientNet, ConvNeXt).
    """

    MODES = ("caffe", "tf", "torch", "none")

    def __init__(self, mode: str = "none", **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}")
        self.mode = mode

    def call(self, images):
        if self.mode == "caffe":
            return ops.flip(images, axis=-1) - ops.convert_to_tensor([103.939, 116.779, 123.68])
        if self.mode == "tf":
            return images / 127.5 - 1.0
        if self.mode == "torch":
            mean = ops.convert_to_tensor([0.485, 0.456, 0.406])
            std = ops.convert_to_tensor([0.229, 0.224, 0.225])
            return (images / 255.0 - mean) / std
        return images

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="covid_tutorial")
class RandomAffine(keras.layers.Layer):
    """Rotation, shift, zoom and shear as ONE affine resampling per image, in training only.

    A chain of four Keras augmentation layers resamples (and blurs) each image four
    times; composing the four matrices first costs one resampling. No horizontal flip:
    the heart sits on the patient's left, and a flipped chest is not a real chest.
    """

    def __init__(self, rotation=10.0, shift=0.05, zoom=0.1, shear=5.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rotation, self.shift, self.zoom, self.shear, self.seed = rotation, shift, zoom, shear, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _uniform(self, batch, limit):
        return keras.random.uniform((batch,), -limit, limit, seed=self.seed_generator)

    def call(self, images, training=None):
        if not training:
            return images
        batch = ops.shape(images)[0]
        height = ops.cast(ops.shape(images)[1], "float32")
        width = ops.cast(ops.shape(images)[2], "float32")
        angle = self._uniform(batch, math.radians(self.rotation))
        shear = self._uniform(batch, math.radians(self.shear))
        scale = 1.0 + self._uniform(batch, self.zoom)
        shift_x = self._uniform(batch, self.shift) * width
        shift_y = self._uniform(batch, self.shift) * height
        # Output pixel -> input pixel: in = A (out - centre) + centre + shift, A = R(angle) S(shear) / scale
        cos, sin, tan = ops.cos(angle), ops.sin(angle), ops.tan(shear)
        a00, a01 = cos / scale, (cos * tan - sin) / scale
        a10, a11 = sin / scale, (sin * tan + cos) / scale
        cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
        b0 = cx - a00 * cx - a01 * cy + shift_x
        b1 = cy - a10 * cx - a11 * cy + shift_y
        zeros = ops.zeros_like(angle)
        transform = ops.stack([a00, a01, b0, a10, a11, b1, zeros, zeros], axis=1)
        return ops.image.affine_transform(images, transform, fill_mode="constant")

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            **{k: getattr(self, k) for k in ("rotation", "shift", "zoom", "shear", "seed")},
        }


# The course's own layers: a saved classifier needs them to load.
CUSTOM_LAYERS = (BackbonePreprocessing, RandomAffine)


def build_classifier(
    backbone: str = "resnet50",
    num_classes: int = 3,
    image_size: int | None = None,
    weights: str | None = "imagenet",
    *,
    augment: bool = True,
    dropout: float = 0.3,
    seed: int | None = None,
) -> keras.Model:
    """Backbone (without its ImageNet top) plus a new softmax head, as one flat graph.

    ``image_size`` defaults to the backbone's native resolution. ``weights`` is
    "imagenet", None (random initialisation) or a path to a weights file of the bare
    backbone. Inputs are raw RGB in 0..255. The head's logits are a layer of their own
    (``head_logits``) so Grad-CAM can use the class score before the softmax.
    """
    spec = get_backbone(backbone)
    size = image_size or spec.native_size
    if size < spec.min_size:
        raise CourseError(f"{spec.name} needs images of at least {spec.min_size} px, not {size}.")
    inputs = keras.Input((size, size, 3), name="image")
    x = RandomAffine(seed=seed, name="augment")(inputs) if augment else inputs
    x = BackbonePreprocessing(spec.preprocessing, name="preprocess")(x)
    base = spec.constructor(include_top=False, weights=None, input_tensor=x)
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(base.output)
    x = keras.layers.Dropout(dropout, seed=seed, name="head_dropout")(x)
    logits = keras.layers.Dense(num_classes, name="head_logits")(x)
    outputs = keras.layers.Activation("softmax", dtype="float32", name="predictions")(logits)
    model = keras.Model(inputs, outputs, name=f"{spec.name.lower()}_classifier")
    if weights is not None:
        load_backbone_weights(model, spec, size, weights)
    else:
        use_fast_batchnorm_statistics(model)
    return model


def use_fast_batchnorm_statistics(model: keras.Model, momentum: float = 0.9) -> None:
    """Let BatchNorm's moving statistics follow the data ten times faster (0.9 instead of 0.99).

    From random weights on a few hundred images, training lasts only ~100 steps: with
    Keras' default 0.99 the moving averages still remember their initial values, and the
    model that is good in training mode is useless in inference mode.
    """
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


def load_backbone_weights(model: keras.Model, spec: Backbone, size: int, weights: str) -> None:
    """Copy pretrained weights layer by layer (by name) from a bare backbone into ``model``."""
    try:
        pretrained = spec.constructor(include_top=False, weights=weights, input_shape=(size, size, 3))
    except Exception as err:  # offline, a proxy, a wrong file: say what to do instead
        raise CourseError(
            f"Could not load {weights!r} weights for {spec.name}: {err}. Without internet use "
            "--profile ci (or weights=None, COVID_TUTORIAL_WEIGHTS=none), or pass a path to a "
            "weights file downloaded elsewhere."
        ) from None
    for layer in pretrained.layers:
        if layer.weights:
            model.get_layer(layer.name).set_weights(layer.get_weights())


def backbone_layers(model: keras.Model) -> list:
    """The layers that came from keras.applications, input to last feature map."""
    skip = set(HEAD_LAYERS) | set(INPUT_LAYERS)
    return [layer for layer in model.layers if layer.name not in skip]


def stage_prefix(name: str) -> str:
    """The stage a backbone layer belongs to, from its name: "conv4" for "conv4_block2_out",
    "block6" for EfficientNet's "block6a_expand_conv"."""
    head = name.split("_")[0]
    return head.rstrip("abcdefghijklmnop") if head.startswith("block") else head


def default_fine_tune_layers(model: keras.Model) -> int:
    """How many backbone layers make up its last stage (conv5 of a ResNet, block7 of an EfficientNet)."""
    layers = backbone_layers(model)
    tail_names = {"top", "post", "bn", "relu", "avg", "layer"}
    prefixes = [stage_prefix(layer.name) for layer in layers]
    last_stage = next(p for p in reversed(prefixes) if p not in tail_names)
    first = prefixes.index(last_stage)
    return len(layers) - first


def set_trainable_stage(model: keras.Model, stage: str, fine_tune_layers: int | None = None) -> int:
    """Freeze or unfreeze the backbone for a training stage; returns the trainable parameter count.

    - "head": backbone frozen, only the new head learns (stage 1 of transfer learning).
    - "fine_tune": the top ``fine_tune_layers`` backbone layers learn too, but every
      BatchNormalization stays frozen, which in Keras 3 also keeps it in inference mode,
      so its ImageNet statistics are not wrecked by small batches (stage 2).
    - "full": everything learns, BatchNorm included (training from scratch, no weights).
    Recompile the model after calling this.
    """
    layers = backbone_layers(model)
    if stage == "fine_tune" and fine_tune_layers is None:
        fine_tune_layers = default_fine_tune_layers(model)
    for i, layer in enumerate(layers):
        if stage == "full":
            layer.trainable = True
        elif stage == "head":
            layer.trainable = False
        elif stage == "fine_tune":
            in_top = i >= len(layers) - fine_tune_layers
            layer.trainable = in_top and not isinstance(layer, keras.layers.BatchNormalization)
        else:
            raise ValueError("stage must be 'head', 'fine_tune' or 'full'")
    for name in HEAD_LAYERS:
        model.get_layer(name).trainable = True
    return count_trainable_parameters(model)


def count_trainable_parameters(model: keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def is_flat(model: keras.Model) -> bool:
    """True when no layer of ``model`` is itself a model (what Grad-CAM tools need)."""
    return not any(isinstance(layer, keras.Model) for layer in model.layers)


def last_feature_layer(model: keras.Model) -> str:
    """Name of the last layer with a 4-D (batch, height, width, channels) output: Grad-CAM's default."""
    for layer in reversed(backbone_layers(model)):
        if len(layer.output.shape) == 4:
            return layer.name
    raise CourseError(f"{model.name} has no 4-D feature map layer for Grad-CAM.")


# EfficientNet's compound scaling constants (Tan and Le 2019, "EfficientNet: Rethinking
# Model Scaling for Convolutional Neural Networks", ICML): depth d = ALPHA**phi, width
# w = BETA**phi, resolution r = GAMMA**phi, chosen so that ALPHA * BETA**2 * GAMMA**2 ~ 2.
ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15

EFFICIENTNETS = tuple(f"EfficientNetB{i}" for i in range(8))


PAPER_MODELS = (
    *EFFICIENTNETS,
    "ResNet50", "ResNet50V2", "ResNet101V2", "ResNet152V2",
    "DenseNet121", "DenseNet169", "DenseNet201",
    "InceptionV3", "InceptionResNetV2", "Xception",
    "VGG16", "VGG19",
)  # fmt: skip


MODERN_REFERENCES = ("EfficientNetV2B0", "EfficientNetV2S", "ConvNeXtTiny")


ZOO = PAPER_MODELS + MODERN_REFERENCES


MODEL_GROUPS = {"zoo": ZOO, "paper": PAPER_MODELS, "efficientnets": EFFICIENTNETS, "modern": MODERN_REFERENCES}


def resolve_models(names) -> list[str]:
    """keras.applications names (any case) or a group (zoo, paper, efficientnets, modern), in order."""
    if isinstance(names, str):
        names = [names]
    chosen: list[str] = []
    for name in names:
        group = MODEL_GROUPS.get(str(name).lower())
        for model in group or [get_backbone(name).name]:
            if model not in chosen:
                chosen.append(model)
    if not chosen:
        raise CourseError("No models given. Name keras.applications backbones, e.g. --models efficientnetb0 resnet50.")
    return chosen


def model_family(name: str) -> str:
    """The family a backbone belongs to, grouped as Garg et al. (2022) group them."""
    for prefix, family in (
        ("EfficientNetV2", "EfficientNetV2"), ("EfficientNet", "EfficientNet"), ("ResNet", "ResNet"),
        ("DenseNet", "DenseNet"), ("Inception", "Inception"), ("Xception", "Inception"), ("VGG", "VGG"),
        ("ConvNeXt", "ConvNeXt"), ("MobileNet", "MobileNet"),
    ):  # fmt: skip
        if name.startswith(prefix):
            return family
    return "other"


def describe_backbone(name: str, image_size: int | None = None) -> dict:
    """Everything read off one keras.applications backbone (no top, random weights).

    Parameters, multiply-accumulates for one image (:func:`count_macs`;
    a FLOP count in the strict sense is about twice that), convolution layers, and for
    the EfficientNet families the MBConv blocks (one ``*_project_conv`` each), the blocks
    with squeeze-and-excitation and the widths of the stem and of the last convolution.
    """

    spec = get_backbone(name)
    size = image_size or spec.native_size
    model = spec.constructor(include_top=False, weights=None, input_shape=(size, size, 3))
    costs = layer_costs(model)
    names = costs["layer"]
    convolutions = costs["type"].isin(["Conv2D", "DepthwiseConv2D", "SeparableConv2D"])
    row = {
        "model": spec.name,
        "family": model_family(spec.name),
        "in_paper": spec.name in PAPER_MODELS,
        "native_size": spec.native_size,
        "image_size": size,
        "preprocessing": spec.preprocessing,
        "params": int(model.count_params()),
        "macs": int(costs["macs"].sum()),
        "conv_layers": int(convolutions.sum()),
        "blocks": int(names.str.fullmatch(r"block\d+[a-z]_project_conv").sum()),
        "se_blocks": int(names.str.fullmatch(r"block\d+[a-z]_se_reduce").sum()),
        "stem_width": _filters(model, ("stem_conv", "conv1_conv", "conv1", "block1_conv1")),
        "head_width": int(model.output.shape[-1]),
    }
    del model
    keras.backend.clear_session()
    return row


def _filters(model, candidates) -> int | None:
    for candidate in candidates:
        try:
            return int(model.get_layer(candidate).filters)
        except (ValueError, AttributeError):
            continue
    return None


def zoo_table(names=ZOO, image_size: int | None = None, *, progress: bool = False) -> pd.DataFrame:
    """One row per backbone: size, cost and shape, computed from the models (see :func:`describe_backbone`).

    ``image_size`` None uses each model's native resolution (the ImageNet training size
    the Keras documentation gives, which is also the default input of its classifier).
    Adds ``params_M``, ``GMACs`` and ``GFLOPs`` (= 2 x MACs).
    """
    rows = []
    for name in resolve_models(names):
        start = time.perf_counter()
        rows.append(describe_backbone(name, image_size))
        if progress:
            print(f"  {rows[-1]['model']}: {rows[-1]['params'] / 1e6:.1f} M parameters ({time.perf_counter() - start:.0f} s)", flush=True)
    table = pd.DataFrame(rows)
    table["params_M"] = table["params"] / 1e6
    table["GMACs"] = table["macs"] / 1e9
    table["GFLOPs"] = 2 * table["GMACs"]
    return table


def efficientnet_scaling(zoo: pd.DataFrame) -> pd.DataFrame:
    """Compound scaling of EfficientNet-B0..B7 read off a :func:`zoo_table` (rows B0..B7).

    Each model's depth (MBConv blocks), width (channels of the last convolution) and
    resolution relative to B0, the scaling exponent phi that each of them implies with
    Tan and Le's constants (d = 1.2**phi, w = 1.1**phi, r = 1.15**phi), and the cost ratio
    the rule predicts (d * w**2 * r**2) next to the measured one.
    """
    rows = zoo.set_index("model").loc[[m for m in EFFICIENTNETS if m in set(zoo["model"])]]
    if "EfficientNetB0" not in rows.index:
        raise CourseError("efficientnet_scaling needs EfficientNetB0 in the zoo table, as the baseline.")
    base = rows.loc["EfficientNetB0"]
    out = pd.DataFrame(index=rows.index)
    out["resolution"] = rows["native_size"]
    out["blocks"] = rows["blocks"]
    out["head_width"] = rows["head_width"]
    out["params_M"] = rows["params_M"]
    out["GMACs"] = rows["GMACs"]
    out["depth_ratio"] = rows["blocks"] / base["blocks"]
    out["width_ratio"] = rows["head_width"] / base["head_width"]
    out["resolution_ratio"] = rows["native_size"] / base["native_size"]
    out["phi_from_depth"] = np.log(out["depth_ratio"]) / math.log(ALPHA)
    out["phi_from_width"] = np.log(out["width_ratio"]) / math.log(BETA)
    out["phi_from_resolution"] = np.log(out["resolution_ratio"]) / math.log(GAMMA)
    out["predicted_cost_ratio"] = out["depth_ratio"] * out["width_ratio"] ** 2 * out["resolution_ratio"] ** 2
    out["measured_cost_ratio"] = rows["macs"] / base["macs"]
    return out


# ---------------------------------------------------------------- parameters and multiply-accumulates


def flat_layers(model):
    """The layers of a Keras model, with nested models expanded into theirs."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from flat_layers(layer)
        else:
            yield layer


def _layer_macs(layer) -> int:
    layers = keras.layers
    out_shape = tuple(layer.output.shape)
    if isinstance(layer, (layers.Conv1D, layers.Conv2D, layers.Conv3D)):
        in_channels = layer.input.shape[-1]
        per_output = math.prod(layer.kernel_size) * in_channels // layer.groups
        return math.prod(out_shape[1:]) * per_output
    if isinstance(layer, layers.DepthwiseConv2D):
        return math.prod(out_shape[1:]) * math.prod(layer.kernel_size)
    if isinstance(layer, layers.SeparableConv2D):
        in_channels = layer.input.shape[-1]
        spatial = math.prod(out_shape[1:-1])
        depthwise = spatial * in_channels * layer.depth_multiplier * math.prod(layer.kernel_size)
        pointwise = spatial * in_channels * layer.depth_multiplier * layer.filters
        return depthwise + pointwise
    if isinstance(layer, layers.Dense):
        in_features = layer.input.shape[-1]
        return math.prod(out_shape[1:-1]) * in_features * layer.units
    return 0


def layer_costs(model) -> pd.DataFrame:
    """One row per layer of a built Keras model: name, type, output shape, parameters, MACs.

    MACs are counted for one input image (batch size 1) in the layers that hold nearly
    all the arithmetic: Conv1D/2D/3D (including grouped), DepthwiseConv2D,
    SeparableConv2D and Dense. Batch normalization, activations, pooling and additions
    cost a handful of operations per output value and are listed with 0 MACs, the usual
    convention of the papers. Nested models are expanded.
    """
    rows = []
    for layer in flat_layers(model):
        rows.append(
            {
                "layer": layer.name,
                "type": type(layer).__name__,
                "output_shape": tuple(layer.output.shape[1:]),
                "params": int(layer.count_params()),
                "macs": int(_layer_macs(layer)),
            }
        )
    return pd.DataFrame(rows, columns=["layer", "type", "output_shape", "params", "macs"])


def count_macs(model) -> int:
    """Multiply-accumulates for one image through a Keras model (see :func:`layer_costs`)."""
    return int(layer_costs(model)["macs"].sum())

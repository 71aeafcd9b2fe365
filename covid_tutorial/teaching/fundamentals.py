"""Fundamentals: the arithmetic and the small models behind notebooks 01 and 02.

Notebook 01 (CNN fundamentals) introduces
:func:`conv2d_numpy`, :func:`pool2d_numpy`, :func:`conv_output_size`,
:func:`conv2d_params`, :func:`dense_params` (the MAC counts of whole models,
:func:`covid_tutorial.models.layer_costs` and :func:`covid_tutorial.models.count_macs`),
:func:`build_small_cnn`, :func:`build_lenet5`, :func:`build_alexnet`,
:func:`architecture_costs` and :data:`QUOTED_IMAGENET_RESULTS`.

Notebook 02 (ResNet and residual learning) introduces
:func:`make_texture_task`, :func:`build_deep_cnn` (with :func:`build_plain_cnn` and
:func:`build_residual_cnn`), :func:`gradient_norms`, :func:`basic_residual_block`,
:func:`bottleneck_residual_block` and :func:`conv_layer_census`.

Conventions, the same as Keras: images are channels-last ``(height, width, channels)``,
kernels are ``(kernel_height, kernel_width, in_channels, filters)``, and a "convolution"
is a cross-correlation (the kernel is not flipped). A MAC is one multiply-accumulate
(``a += w * x``); papers that say "FLOPs" for CNNs usually count MACs, and a FLOP count
in the strict sense (multiplies and adds counted apart) is about twice the MAC count.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..models import flat_layers, layer_costs

__all__ = [
    "same_padding",
    "conv_output_size",
    "conv2d_numpy",
    "pool2d_numpy",
    "conv2d_params",
    "dense_params",
    "build_lenet5",
    "build_alexnet",
    "build_small_cnn",
    "architecture_costs",
    "QUOTED_IMAGENET_RESULTS",
    "TEXTURE_CLASSES",
    "make_texture_task",
    "build_deep_cnn",
    "build_plain_cnn",
    "build_residual_cnn",
    "gradient_norms",
    "basic_residual_block",
    "bottleneck_residual_block",
    "conv_layer_census",
]

# ---------------------------------------------------------------- convolution arithmetic


def _check_padding(padding) -> str | int:
    if isinstance(padding, str):
        mode = padding.lower()
        if mode not in ("valid", "same"):
            raise ValueError(
                f"padding={padding!r}: use 'valid', 'same' or a non-negative int "
                "(pixels added on each side)."
            )
        return mode
    if int(padding) != padding or padding < 0:
        raise ValueError(f"padding={padding!r}: an explicit padding must be a non-negative int.")
    return int(padding)


def same_padding(size: int, kernel_size: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """Pixels that Keras/TensorFlow add before and after one axis for ``padding="same"``.

    "same" makes the output ``ceil(size / stride)`` long. When the total padding is odd,
    the extra pixel goes at the end (bottom or right), as TensorFlow does.
    """
    effective = (kernel_size - 1) * dilation + 1
    out = -(-size // stride)  # ceil without floats
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def conv_output_size(
    size: int, kernel_size: int, stride: int = 1, padding: str | int = "valid", dilation: int = 1
) -> int:
    """Output length along one axis of a convolution or pooling window.

    ``floor((size + total_padding - effective_kernel) / stride) + 1`` with
    ``effective_kernel = dilation * (kernel_size - 1) + 1``. ``padding`` is "valid" (none),
    "same" (see :func:`same_padding`) or an int added on both sides.
    """
    mode = _check_padding(padding)
    if mode == "valid":
        total = 0
    elif mode == "same":
        total = sum(same_padding(size, kernel_size, stride, dilation))
    else:
        total = 2 * mode
    effective = (kernel_size - 1) * dilation + 1
    if size + total < effective:
        raise ValueError(
            f"a {kernel_size}x{kernel_size} window (dilation {dilation}) does not fit in "
            f"{size} pixels with padding {padding!r}; use padding='same' or a smaller kernel."
        )
    return (size + total - effective) // stride + 1


def _as_batch(x: np.ndarray) -> tuple[np.ndarray, bool]:
    x = np.asarray(x)
    if x.ndim == 3:
        return x[None], True
    if x.ndim != 4:
        raise ValueError(f"expected an image (H, W, C) or a batch (N, H, W, C), got shape {x.shape}")
    return x, False


def _pad_spatial(x: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int], padding, value=0.0):
    mode = _check_padding(padding)
    if mode == "valid":
        return x
    if mode == "same":
        pads = [same_padding(n, k, s) for n, k, s in zip(x.shape[1:3], kernel, strides)]
    else:
        pads = [(mode, mode), (mode, mode)]
    return np.pad(x, [(0, 0), pads[0], pads[1], (0, 0)], constant_values=value)


def _pair(value) -> tuple[int, int]:
    return (value, value) if np.isscalar(value) else tuple(value)


def conv2d_numpy(x, kernel, bias=None, strides=1, padding="valid") -> np.ndarray:
    """A 2-D convolution (Keras semantics) written with NumPy only.

    Every output value is the sum, over a ``kh x kw x C`` window of the input, of the
    window times the kernel, plus a bias: the same weights slide over every position
    (weight sharing). ``x`` is ``(H, W, C)`` or ``(N, H, W, C)``; ``kernel`` is
    ``(kh, kw, C, F)``; the result is ``(N, H_out, W_out, F)`` (no batch axis if ``x``
    had none).
    """
    batch, single = _as_batch(np.asarray(x, dtype=np.float64))
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 4 or kernel.shape[2] != batch.shape[-1]:
        raise ValueError(
            f"kernel shape {kernel.shape} does not match {batch.shape[-1]} input channels; "
            "expected (kh, kw, in_channels, filters)."
        )
    kh, kw = kernel.shape[:2]
    sh, sw = _pair(strides)
    padded = _pad_spatial(batch, (kh, kw), (sh, sw), padding)
    # windows: (N, H', W', C, kh, kw) -- every kh x kw patch, without copying
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(1, 2))
    windows = windows[:, ::sh, ::sw]
    out = np.einsum("nhwcij,ijcf->nhwf", windows, kernel)
    if bias is not None:
        out = out + np.asarray(bias, dtype=np.float64)
    return out[0] if single else out


def pool2d_numpy(x, pool_size=2, strides=None, mode: str = "max") -> np.ndarray:
    """Max or average pooling with "valid" padding, as Keras ``MaxPooling2D``/``AveragePooling2D``.

    Pooling has no weights: it summarises each window of each channel separately.
    """
    batch, single = _as_batch(np.asarray(x, dtype=np.float64))
    ph, pw = _pair(pool_size)
    sh, sw = _pair(strides if strides is not None else pool_size)
    windows = np.lib.stride_tricks.sliding_window_view(batch, (ph, pw), axis=(1, 2))[:, ::sh, ::sw]
    if mode == "max":
        out = windows.max(axis=(-2, -1))
    elif mode in ("avg", "average", "mean"):
        out = windows.mean(axis=(-2, -1))
    else:
        raise ValueError(f"mode={mode!r}: use 'max' or 'avg'.")
    return out[0] if single else out


# ---------------------------------------------------------------- parameters and MACs


def conv2d_params(kernel_size, in_channels: int, filters: int, use_bias: bool = True, groups: int = 1) -> int:
    """Weights of a Conv2D layer: ``kh * kw * (in_channels / groups) * filters (+ filters biases)``.

    The count does not depend on the image size: the same kernel is used at every position.
    """
    kh, kw = _pair(kernel_size)
    if in_channels % groups or filters % groups:
        raise ValueError(f"groups={groups} must divide in_channels={in_channels} and filters={filters}.")
    return kh * kw * (in_channels // groups) * filters + (filters if use_bias else 0)


def dense_params(in_features: int, units: int, use_bias: bool = True) -> int:
    """Weights of a Dense layer: one weight per (input, unit) pair, plus one bias per unit."""
    return in_features * units + (units if use_bias else 0)


# ---------------------------------------------------------------- classic architectures


def build_lenet5(input_shape=(32, 32, 1), num_classes: int = 10, name: str = "LeNet5"):
    """LeNet-5 (LeCun et al., 1998) in Keras, as it is usually re-implemented.

    Two simplifications of the 1998 network, both stated in the notebook: C3 connects
    every input map to every output map (the paper used a sparse connection table), and
    the subsampling layers are plain average pooling (the paper's had a trainable
    coefficient and bias per map). The output is a softmax instead of RBF units.
    """
    import keras
    from keras import layers

    inputs = keras.Input(input_shape, name="image")
    x = layers.Conv2D(6, 5, activation="tanh", name="C1")(inputs)
    x = layers.AveragePooling2D(2, name="S2")(x)
    x = layers.Conv2D(16, 5, activation="tanh", name="C3")(x)
    x = layers.AveragePooling2D(2, name="S4")(x)
    x = layers.Conv2D(120, 5, activation="tanh", name="C5")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(84, activation="tanh", name="F6")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs, name=name)


def build_alexnet(input_shape=(227, 227, 3), num_classes: int = 1000, groups: int = 2, name: str = "AlexNet"):
    """AlexNet (Krizhevsky et al., 2012): five conv layers and three dense layers.

    ``groups=2`` reproduces the paper's split over two GPUs: conv2, conv4 and conv5 only
    see the half of the previous layer's maps that sits on their own GPU. ``groups=1``
    gives the single-tower variant most libraries ship. Local response normalisation
    is left out (it has no weights). Meant for counting parameters and MACs; TensorFlow
    may not run grouped convolutions on a CPU.
    """
    import keras
    from keras import layers

    inputs = keras.Input(input_shape, name="image")
    x = layers.Conv2D(96, 11, strides=4, activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    x = layers.Conv2D(256, 5, padding="same", groups=groups, activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool2")(x)
    x = layers.Conv2D(384, 3, padding="same", activation="relu", name="conv3")(x)
    x = layers.Conv2D(384, 3, padding="same", groups=groups, activation="relu", name="conv4")(x)
    x = layers.Conv2D(256, 3, padding="same", groups=groups, activation="relu", name="conv5")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool5")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(4096, activation="relu", name="fc6")(x)
    x = layers.Dropout(0.5, name="drop6")(x)
    x = layers.Dense(4096, activation="relu", name="fc7")(x)
    x = layers.Dropout(0.5, name="drop7")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="fc8")(x)
    return keras.Model(inputs, outputs, name=name)


def build_small_cnn(
    input_shape=(64, 64, 1), num_classes: int = 3, widths=(16, 32, 64), name: str = "small_cnn"
):
    """A small CNN from the four building blocks: conv, batch normalization, ReLU, pooling.

    Inputs are raw pixel values in 0..255 (rescaled inside the model). Each width adds
    ``3x3 conv -> BN -> ReLU -> 2x2 max pooling``; global average pooling and a softmax
    layer follow. The BN momentum is 0.9 instead of Keras' 0.99: with a few dozen
    training images an epoch has only a handful of steps, and the moving averages
    used at inference would otherwise lag far behind the batch statistics.
    """
    import keras
    from keras import layers

    inputs = keras.Input(input_shape, name="image")
    x = layers.Rescaling(1 / 255, name="rescale")(inputs)
    for i, width in enumerate(widths, start=1):
        x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = layers.Activation("relu", name=f"relu{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name=name)


def architecture_costs(builder, **kwargs) -> dict:
    """Build a network only to count it: parameters, MACs per image, weight layers.

    The model is built inside ``keras.StatelessScope(initialize_variables=False)``, so
    its weights get their shapes but no values and take no memory: VGG16's 138 M
    parameters cost nothing to count. The model is thrown away afterwards. Returns
    ``params``, ``macs``, ``conv_layers``, ``dense_layers``, ``dense_params`` and
    ``input_size``.
    """
    import keras

    with keras.StatelessScope(initialize_variables=False):
        model = builder(**kwargs)
    costs = layer_costs(model)
    input_size = int(model.inputs[0].shape[1])
    del model
    keras.backend.clear_session()
    conv = costs["type"].isin(["Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "SeparableConv2D"])
    dense = costs["type"] == "Dense"
    return {
        "params": int(costs["params"].sum()),
        "macs": int(costs["macs"].sum()),
        "conv_layers": int(conv.sum()),
        "dense_layers": int(dense.sum()),
        "dense_params": int(costs.loc[dense, "params"].sum()),
        "input_size": input_size,
    }


# ImageNet results as printed in each paper: quoted, not computed here. "metric" says
# whether the paper reports error or accuracy (in %); "protocol" says how it evaluated.
QUOTED_IMAGENET_RESULTS = [
    {
        "model": "LeNet-5",
        "metric": None,
        "top1": None,
        "top5": None,
        "protocol": "not evaluated on ImageNet (handwritten digits)",
        "source": "LeCun et al. 1998, Proc. IEEE 86(11):2278-2324",
    },
    {
        "model": "AlexNet",
        "metric": "error",
        "top1": 40.7,
        "top5": 18.2,
        "protocol": "ILSVRC-2012 val, one CNN",
        "source": "Krizhevsky et al. 2012, NeurIPS, Table 2",
    },
    {
        "model": "VGG16",
        "metric": "error",
        "top1": 25.6,
        "top5": 8.1,
        "protocol": "val, configuration D, one test scale",
        "source": "Simonyan & Zisserman 2015, ICLR, Table 3",
    },
    {
        "model": "InceptionV3",
        "metric": "error",
        "top1": 21.2,
        "top5": 5.6,
        "protocol": "val, single crop",
        "source": "Szegedy et al. 2016, CVPR, abstract",
    },
    {
        "model": "ResNet50",
        "metric": "error",
        "top1": 22.85,
        "top5": 6.71,
        "protocol": "val, 10 crops",
        "source": "He et al. 2016, CVPR, Table 3",
    },
    {
        "model": "DenseNet121",
        "metric": "error",
        "top1": 25.02,
        "top5": 7.71,
        "protocol": "val, single crop",
        "source": "Huang et al. 2017, CVPR, Table 3",
    },
    {
        "model": "EfficientNetB0",
        "metric": "accuracy",
        "top1": 77.1,
        "top5": 93.3,
        "protocol": "val, single crop",
        "source": "Tan & Le 2019, ICML, Table 2",
    },
]


# ---------------------------------------------------------------- deep plain vs residual


TEXTURE_CLASSES = ("horizontal", "vertical", "diagonal")


def make_texture_task(n: int, size: int = 32, noise: float = 0.5, seed: int = 0):
    """A small synthetic 3-class image task: noisy stripes, horizontal, vertical or diagonal.

    Each image holds stripes of a random period (4 to 8 px) and phase under Gaussian
    noise of standard deviation ``noise``, so a few 3x3 filters can solve it, but only
    if the gradient reaches them. Returns ``x`` of shape ``(n, size, size, 1)`` (float32)
    and one-hot ``y`` of shape ``(n, 3)``, classes in :data:`TEXTURE_CLASSES` order.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(TEXTURE_CLASSES), size=n)
    period = rng.uniform(4, 8, size=n)[:, None, None]
    phase = rng.uniform(0, 2 * np.pi, size=n)[:, None, None]
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    direction = np.select(
        [labels[:, None, None] == 0, labels[:, None, None] == 1], [rows, cols], (rows + cols) / np.sqrt(2)
    )
    stripes = np.sin(2 * np.pi * direction / period + phase)
    x = stripes + noise * rng.standard_normal((n, size, size))
    y = np.eye(len(TEXTURE_CLASSES), dtype=np.float32)[labels]
    return x[..., None].astype(np.float32), y


def build_deep_cnn(
    depth: int,
    *,
    residual: bool,
    width: int = 16,
    input_shape=(32, 32, 1),
    num_classes: int = 3,
    kernel_initializer: str = "glorot_uniform",
    name: str | None = None,
):
    """A stem conv, ``depth`` 3x3 conv layers in pairs, global average pooling and a softmax.

    With ``residual=True`` each pair is wrapped by an identity shortcut,
    ``x -> relu(x + conv(relu(conv(x))))``; with ``residual=False`` it is the same two
    convolutions without the addition. Both versions have exactly the same weights, so
    any difference in training comes from the shortcut alone. No batch normalization,
    so that the effect of depth on the gradient shows plainly. ``kernel_initializer``
    is Keras' default (Glorot uniform) unless you ask for another, e.g. "he_normal".
    """
    import keras
    from keras import layers

    if depth < 2 or depth % 2:
        raise ValueError(f"depth={depth}: use an even number >= 2 (the body is built in pairs).")
    kind = "residual" if residual else "plain"
    inputs = keras.Input(input_shape, name="image")
    conv = dict(kernel_size=3, padding="same", kernel_initializer=kernel_initializer)
    x = layers.Conv2D(width, activation="relu", name="conv_0", **conv)(inputs)
    for i in range(1, depth, 2):
        h = layers.Conv2D(width, activation="relu", name=f"conv_{i}", **conv)(x)
        h = layers.Conv2D(width, name=f"conv_{i + 1}", **conv)(h)
        if residual:
            h = layers.Add(name=f"add_{i + 1}")([x, h])
        x = layers.Activation("relu", name=f"relu_{i + 1}")(h)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name=name or f"{kind}_{depth}")


def build_plain_cnn(depth: int, **kwargs):
    """:func:`build_deep_cnn` without shortcuts."""
    return build_deep_cnn(depth, residual=False, **kwargs)


def build_residual_cnn(depth: int, **kwargs):
    """:func:`build_deep_cnn` with an identity shortcut around every pair of convolutions."""
    return build_deep_cnn(depth, residual=True, **kwargs)


def gradient_norms(model, x, y, loss="categorical_crossentropy") -> pd.DataFrame:
    """L2 norm of the loss gradient for the kernel of every Conv/Dense layer, input to output.

    One forward and backward pass on ``(x, y)`` in training mode. Returns a table with the
    columns ``layer``, ``depth`` (1 = the layer nearest the input) and ``grad_norm``.
    """
    import keras
    import tensorflow as tf

    loss_fn = keras.losses.get(loss)
    kernels = [
        (layer.name, layer.kernel)
        for layer in flat_layers(model)
        if getattr(layer, "kernel", None) is not None and layer.trainable
    ]
    with tf.GradientTape() as tape:
        predictions = model(x, training=True)
        value = tf.reduce_mean(loss_fn(y, predictions))
    grads = tape.gradient(value, [kernel for _, kernel in kernels])
    rows = [
        {"layer": name, "depth": i + 1, "grad_norm": float(tf.norm(g)) if g is not None else 0.0}
        for i, ((name, _), g) in enumerate(zip(kernels, grads))
    ]
    return pd.DataFrame(rows, columns=["layer", "depth", "grad_norm"])


# ---------------------------------------------------------------- residual blocks


def basic_residual_block(x, filters: int, stride: int = 1, *, name: str = "basic"):
    """The two-layer block of ResNet-18/34 (He et al. 2016, Fig. 2 and 5 left).

    ``3x3 conv -> BN -> ReLU -> 3x3 conv -> BN``, added to the shortcut, then ReLU. The
    shortcut is the identity, or a 1x1 projection (conv + BN) when the block changes
    the resolution (``stride > 1``) or the number of channels.
    """
    from keras import layers

    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, name=f"{name}_0_conv")(x)
        shortcut = layers.BatchNormalization(epsilon=1.001e-5, name=f"{name}_0_bn")(shortcut)
    h = layers.Conv2D(filters, 3, strides=stride, padding="same", name=f"{name}_1_conv")(x)
    h = layers.BatchNormalization(epsilon=1.001e-5, name=f"{name}_1_bn")(h)
    h = layers.Activation("relu", name=f"{name}_1_relu")(h)
    h = layers.Conv2D(filters, 3, padding="same", name=f"{name}_2_conv")(h)
    h = layers.BatchNormalization(epsilon=1.001e-5, name=f"{name}_2_bn")(h)
    h = layers.Add(name=f"{name}_add")([shortcut, h])
    return layers.Activation("relu", name=f"{name}_out")(h)


def bottleneck_residual_block(
    x,
    filters: int,
    stride: int = 1,
    *,
    expansion: int = 4,
    projection: bool | None = None,
    downsample_in: str = "1x1",
    name: str = "bottleneck",
):
    """The three-layer block of ResNet-50/101/152 (He et al. 2016, Fig. 5 right).

    ``1x1 conv (filters) -> 3x3 conv (filters) -> 1x1 conv (expansion * filters)``, each
    followed by BN (and ReLU, except the last), added to the shortcut, then ReLU. The
    1x1 layers shrink and restore the channels so that the costly 3x3 works on few of
    them. ``projection=None`` uses a 1x1 projection shortcut only when the shape changes.
    ``downsample_in`` puts the stride on the first 1x1 conv ("1x1", as Keras' ResNet50
    and the original Caffe model) or on the 3x3 conv ("3x3", as torchvision): same
    weights, different arithmetic. Convolutions keep their biases, as in Keras.
    """
    from keras import layers

    if downsample_in not in ("1x1", "3x3"):
        raise ValueError(f"downsample_in={downsample_in!r}: use '1x1' or '3x3'.")
    out_channels = expansion * filters
    if projection is None:
        projection = stride != 1 or x.shape[-1] != out_channels
    stride_1x1, stride_3x3 = (stride, 1) if downsample_in == "1x1" else (1, stride)
    shortcut = x
    if projection:
        shortcut = layers.Conv2D(out_channels, 1, strides=stride, name=f"{name}_0_conv")(x)
        shortcut = layers.BatchNormalization(epsilon=1.001e-5, name=f"{name}_0_bn")(shortcut)
    h = layers.Conv2D(filters, 1, strides=stride_1x1, name=f"{name}_1_conv")(x)
    h = layers.BatchNormalization(epsilon=1.001e-5, name=f"{name}_1_bn")(h)
    h = layers.Activation("relu", name=f"{name}_1_relu")(h)
    h = layers.Conv2D(filters, 3, strides=stride_3x3, padding="same", name=f"{name}_2_conv")(h)
    h = layers.BatchNormalization(epsilon=1.001e-5, name=f"{name}_2_bn")(h)
    h = layers.Activation("relu", name=f"{name}_2_relu")(h)
    h = layers.Conv2D(out_channels, 1, name=f"{name}_3_conv")(h)
    h = layers.BatchNormalization(epsilon=1.001e-5, name=f"{name}_3_bn")(h)
    h = layers.Add(name=f"{name}_add")([shortcut, h])
    return layers.Activation("relu", name=f"{name}_out")(h)


def conv_layer_census(model) -> pd.DataFrame:
    """Every Conv2D and Dense layer of a Keras ResNet, with its role in the network.

    Roles: "projection shortcut" for the 1x1 convolutions on a shortcut (Keras names
    them ``*_0_conv``), "dense" for the classifier, "main path" for every other
    convolution. The "50" of ResNet-50 counts the main-path convolutions plus the dense
    layer: the shortcut projections are not counted (He et al. 2016, Table 1).
    """
    import keras

    rows = []
    for layer in flat_layers(model):
        if isinstance(layer, keras.layers.Conv2D):
            role = "projection shortcut" if layer.name.endswith("_0_conv") else "main path"
            kernel = "x".join(map(str, layer.kernel_size))
            strides = layer.strides[0]
            units = layer.filters
        elif isinstance(layer, keras.layers.Dense):
            role, kernel, strides, units = "dense", "-", "-", layer.units
        else:
            continue
        rows.append(
            {
                "layer": layer.name,
                "role": role,
                "kernel": kernel,
                "stride": strides,
                "units": units,
                "params": int(layer.count_params()),
            }
        )
    return pd.DataFrame(rows, columns=["layer", "role", "kernel", "stride", "units", "params"])

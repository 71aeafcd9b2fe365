"""covid_tutorial.teaching.fundamentals: each number the notebooks 01 and 02 print, checked independently.

Keras is the reference for the NumPy convolution, pooling and output-size arithmetic;
hand computations are the reference for parameter and MAC counts.
"""

import math

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from covid_tutorial.teaching import fundamentals as fun  # noqa: E402
from covid_tutorial.models import count_macs, layer_costs  # noqa: E402


def _keras_conv(x, kernel, bias, strides, padding, dilation=1):
    layer = keras.layers.Conv2D(kernel.shape[-1], kernel.shape[:2], strides=strides, padding=padding,
                                dilation_rate=dilation)
    layer.build(x.shape)
    layer.set_weights([kernel.astype("float32"), bias.astype("float32")])
    return np.asarray(layer(x.astype("float32")))


# ---------------------------------------------------------------- convolution


@pytest.mark.parametrize(
    "height, width, kernel_size, strides, padding",
    [
        (5, 5, 3, 1, "valid"),
        (9, 11, 3, 2, "same"),
        (8, 8, 2, 2, "same"),  # even kernel: TensorFlow pads the extra pixel at the end
        (10, 7, (3, 5), (2, 1), "valid"),
        (6, 6, 4, 3, "same"),
        (7, 9, 1, 2, "valid"),
    ],
)
def test_conv2d_numpy_equals_keras_conv2d(height, width, kernel_size, strides, padding):
    rng = np.random.default_rng(0)
    kh, kw = (kernel_size, kernel_size) if np.isscalar(kernel_size) else kernel_size
    x = rng.normal(size=(2, height, width, 3))
    kernel = rng.normal(size=(kh, kw, 3, 4))
    bias = rng.normal(size=4)
    ours = fun.conv2d_numpy(x, kernel, bias, strides=strides, padding=padding)
    theirs = _keras_conv(x, kernel, bias, strides, padding)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def test_conv2d_numpy_by_hand_is_a_cross_correlation():
    image = np.arange(9, dtype=float).reshape(3, 3, 1)
    kernel = np.array([[1.0, 0.0], [0.0, -1.0]]).reshape(2, 2, 1, 1)  # not symmetric: a flip would show
    out = fun.conv2d_numpy(image, kernel, bias=[10.0])
    # out[i, j] = x[i, j] - x[i + 1, j + 1] + 10 = -4 + 10 for every window
    np.testing.assert_array_equal(out[..., 0], np.full((2, 2), 6.0))


def test_conv2d_numpy_keeps_a_single_image_unbatched_and_checks_channels():
    assert fun.conv2d_numpy(np.zeros((5, 5, 2)), np.zeros((3, 3, 2, 7))).shape == (3, 3, 7)
    with pytest.raises(ValueError, match="input channels"):
        fun.conv2d_numpy(np.zeros((5, 5, 2)), np.zeros((3, 3, 3, 1)))


def test_convolution_is_linear():
    rng = np.random.default_rng(1)
    x1, x2 = rng.normal(size=(2, 6, 6, 2))
    kernel = rng.normal(size=(3, 3, 2, 2))
    left = fun.conv2d_numpy(3 * x1 + 0.5 * x2, kernel)
    right = 3 * fun.conv2d_numpy(x1, kernel) + 0.5 * fun.conv2d_numpy(x2, kernel)
    np.testing.assert_allclose(left, right)


# ---------------------------------------------------------------- output sizes


@pytest.mark.parametrize("size", [1, 7, 8, 28, 224, 227])
@pytest.mark.parametrize("kernel_size", [1, 3, 4, 7, 11])
@pytest.mark.parametrize("stride", [1, 2, 3, 4])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_conv_output_size_matches_keras(size, kernel_size, stride, padding):
    if padding == "valid" and kernel_size > size:
        with pytest.raises(ValueError, match="does not fit"):
            fun.conv_output_size(size, kernel_size, stride, padding)
        return
    layer = keras.layers.Conv2D(1, kernel_size, strides=stride, padding=padding)
    expected = layer.compute_output_shape((None, size, size, 1))[1]
    assert fun.conv_output_size(size, kernel_size, stride, padding) == expected


@pytest.mark.parametrize("size, kernel_size, dilation", [(32, 3, 2), (33, 3, 3), (20, 5, 2), (9, 4, 2)])
def test_conv_output_size_with_dilation_matches_keras(size, kernel_size, dilation):
    stride = 1  # Keras refuses strides > 1 together with dilation > 1
    for padding in ("valid", "same"):
        layer = keras.layers.Conv2D(1, kernel_size, strides=stride, padding=padding, dilation_rate=dilation)
        expected = layer.compute_output_shape((None, size, size, 1))[1]
        assert fun.conv_output_size(size, kernel_size, stride, padding, dilation) == expected


@pytest.mark.parametrize("size, kernel_size, stride, pad", [(224, 7, 2, 3), (112, 3, 2, 1), (10, 3, 1, 2), (9, 4, 3, 1)])
def test_conv_output_size_with_explicit_padding_matches_zero_padding_then_valid(size, kernel_size, stride, pad):
    inputs = keras.Input((size, size, 1))
    x = keras.layers.ZeroPadding2D(pad)(inputs)
    x = keras.layers.Conv2D(1, kernel_size, strides=stride)(x)
    assert fun.conv_output_size(size, kernel_size, stride, padding=pad) == x.shape[1]


def test_same_padding_puts_the_odd_pixel_at_the_end_and_bad_padding_is_refused():
    assert fun.same_padding(8, 2, 1) == (0, 1)
    assert fun.same_padding(224, 7, 2) == (2, 3)
    assert fun.same_padding(7, 3, 1) == (1, 1)
    with pytest.raises(ValueError, match="padding"):
        fun.conv_output_size(10, 3, padding="full")
    with pytest.raises(ValueError, match="padding"):
        fun.conv_output_size(10, 3, padding=-1)


# ---------------------------------------------------------------- pooling and parameter formulas


@pytest.mark.parametrize("mode, layer", [("max", "MaxPooling2D"), ("avg", "AveragePooling2D")])
@pytest.mark.parametrize("pool_size, strides", [(2, None), (3, 2), (2, 1)])
def test_pool2d_numpy_equals_keras(mode, layer, pool_size, strides):
    x = np.random.default_rng(2).normal(size=(2, 9, 8, 3)).astype("float32")
    theirs = getattr(keras.layers, layer)(pool_size, strides=strides)(x)
    np.testing.assert_allclose(fun.pool2d_numpy(x, pool_size, strides, mode=mode), theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kernel_size, in_channels, filters, use_bias, groups",
    [(3, 1, 32, True, 1), (1, 256, 64, True, 1), ((3, 5), 8, 16, False, 1), (5, 96, 256, True, 2), (3, 12, 12, True, 12)],
)
def test_conv2d_params_matches_keras(kernel_size, in_channels, filters, use_bias, groups):
    layer = keras.layers.Conv2D(filters, kernel_size, use_bias=use_bias, groups=groups)
    layer.build((None, 32, 32, in_channels))
    assert fun.conv2d_params(kernel_size, in_channels, filters, use_bias, groups) == layer.count_params()


def test_dense_params_matches_keras_and_groups_must_divide():
    layer = keras.layers.Dense(84)
    layer.build((None, 120))
    assert fun.dense_params(120, 84) == layer.count_params() == 10164
    assert fun.dense_params(120, 84, use_bias=False) == 10080
    with pytest.raises(ValueError, match="groups"):
        fun.conv2d_params(3, 10, 4, groups=3)


# ---------------------------------------------------------------- MACs


def test_count_macs_of_a_tiny_model_equals_the_hand_count():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)  # 6x6x4 outputs, 3*3*3 MACs each
    x = keras.layers.BatchNormalization(name="bn")(x)  # not counted
    x = keras.layers.MaxPooling2D(2, name="pool")(x)  # 3x3x4, not counted
    x = keras.layers.Conv2D(2, 1, name="pointwise")(x)  # 3x3x2 outputs, 4 MACs each
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(5, name="dense")(x)  # 18 inputs x 5 units
    model = keras.Model(inputs, outputs)
    by_hand = {"conv": 6 * 6 * 4 * 27, "pointwise": 3 * 3 * 2 * 4, "dense": 18 * 5}
    table = layer_costs(model).set_index("layer")
    for name, macs in by_hand.items():
        assert table.loc[name, "macs"] == macs, name
    assert table.loc[["bn", "pool", "flatten"], "macs"].sum() == 0
    assert count_macs(model) == sum(by_hand.values()) == 4050
    assert table["params"].sum() == model.count_params()


def test_count_macs_of_depthwise_separable_grouped_and_nested_layers():
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(inputs)  # 8*8*4 outputs, 9 MACs each
    x = keras.layers.SeparableConv2D(6, 3, padding="same", name="sep")(x)  # dw 8*8*4*9 + pw 8*8*4*6
    x = keras.layers.Conv2D(4, 3, groups=2, name="grouped")(x)  # 6*6*4 outputs, 9*(6/2) MACs each
    inner = keras.Model(inputs, x, name="inner")
    outer_in = keras.Input((8, 8, 4))
    outer = keras.Model(outer_in, keras.layers.Dense(3, name="head")(inner(outer_in)))  # 6*6 positions x 4 x 3
    expected = 8 * 8 * 4 * 9 + (8 * 8 * 4 * 9 + 8 * 8 * 4 * 6) + 6 * 6 * 4 * 27 + 6 * 6 * 4 * 3
    assert count_macs(outer) == expected
    assert set(layer_costs(outer)["layer"]) >= {"dw", "sep", "grouped", "head"}


def test_lenet5_and_alexnet_match_their_hand_counts():
    lenet = fun.architecture_costs(fun.build_lenet5)
    assert lenet["params"] == 156 + 2416 + 48120 + 10164 + 850 == 61706
    assert lenet["macs"] == 28 * 28 * 6 * 25 + 10 * 10 * 16 * 150 + 120 * 400 + 120 * 84 + 84 * 10
    alexnet = fun.architecture_costs(fun.build_alexnet)
    by_hand = (11 * 11 * 3 * 96 + 96) + (5 * 5 * 48 * 256 + 256) + (3 * 3 * 256 * 384 + 384) \
        + (3 * 3 * 192 * 384 + 384) + (3 * 3 * 192 * 256 + 256) \
        + (9216 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)
    assert alexnet["params"] == by_hand == 60_965_224
    assert (alexnet["conv_layers"], alexnet["dense_layers"], alexnet["input_size"]) == (5, 3, 227)


def test_architecture_costs_allocates_no_weights_and_counts_like_keras():
    costs = fun.architecture_costs(keras.applications.VGG16, weights=None)
    assert costs["params"] == 138_357_544  # the figure keras.applications documents
    assert costs["dense_params"] == 25088 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000
    assert costs["macs"] == sum(
        out * out * filters * 9 * cin
        for out, cin, filters in [(224, 3, 64), (224, 64, 64), (112, 64, 128), (112, 128, 128),
                                  (56, 128, 256), (56, 256, 256), (56, 256, 256), (28, 256, 512),
                                  (28, 512, 512), (28, 512, 512), (14, 512, 512), (14, 512, 512), (14, 512, 512)]
    ) + 25088 * 4096 + 4096 * 4096 + 4096 * 1000


# ---------------------------------------------------------------- ResNet50 and residual blocks


@pytest.fixture(scope="module")
def resnet50():
    with keras.StatelessScope(initialize_variables=False):  # shapes only, no memory
        return keras.applications.ResNet50(weights=None)


def _block_params(model, prefix):
    return sum(layer.count_params() for layer in model.layers if layer.name.startswith(prefix + "_"))


def test_resnet50_census_49_main_path_convs_4_shortcuts_1_dense(resnet50):
    census = fun.conv_layer_census(resnet50)
    assert census["role"].value_counts().to_dict() == {"main path": 49, "projection shortcut": 4, "dense": 1}
    shortcuts = census[census["role"] == "projection shortcut"]
    assert shortcuts["kernel"].eq("1x1").all() and shortcuts["stride"].tolist() == [1, 2, 2, 2]
    assert resnet50.count_params() == 25_636_712
    assert count_macs(resnet50) == 3_857_973_248


def test_basic_block_params_equal_the_hand_count():
    inputs = keras.Input((56, 56, 64))
    identity = keras.Model(inputs, fun.basic_residual_block(inputs, 64))
    assert identity.count_params() == 2 * (3 * 3 * 64 * 64 + 64) + 2 * 4 * 64 == 74_368
    assert not any(layer.name.endswith("_0_conv") for layer in identity.layers)
    projected = keras.Model(inputs, fun.basic_residual_block(inputs, 128, stride=2, name="down"))
    assert projected.output.shape[1:] == (28, 28, 128)
    by_hand = (9 * 64 * 128 + 128) + (9 * 128 * 128 + 128) + (64 * 128 + 128) + 3 * 4 * 128
    assert projected.count_params() == by_hand


@pytest.mark.parametrize(
    "prefix, in_shape, filters, stride",
    [("conv2_block1", (56, 56, 64), 64, 1), ("conv2_block2", (56, 56, 256), 64, 1),
     ("conv3_block1", (56, 56, 256), 128, 2), ("conv5_block3", (7, 7, 2048), 512, 1)],
)
def test_bottleneck_block_params_equal_the_matching_keras_block(resnet50, prefix, in_shape, filters, stride):
    inputs = keras.Input(in_shape)
    ours = keras.Model(inputs, fun.bottleneck_residual_block(inputs, filters, stride, name=prefix))
    assert ours.count_params() == _block_params(resnet50, prefix)
    assert ours.output.shape[1:] == resnet50.get_layer(f"{prefix}_out").output.shape[1:]


def test_bottleneck_identity_block_hand_count_and_downsampling_variants():
    inputs = keras.Input((56, 56, 256))
    identity = keras.Model(inputs, fun.bottleneck_residual_block(inputs, 64))
    assert identity.count_params() == (256 * 64 + 64) + (9 * 64 * 64 + 64) + (64 * 256 + 256) + 4 * (64 + 64 + 256)
    keras_style = keras.Model(inputs, fun.bottleneck_residual_block(inputs, 128, 2, downsample_in="1x1", name="a"))
    torch_style = keras.Model(inputs, fun.bottleneck_residual_block(inputs, 128, 2, downsample_in="3x3", name="b"))
    assert keras_style.count_params() == torch_style.count_params()
    assert count_macs(torch_style) > count_macs(keras_style)
    with pytest.raises(ValueError, match="downsample_in"):
        fun.bottleneck_residual_block(inputs, 64, downsample_in="5x5")


# ---------------------------------------------------------------- plain vs residual, gradients


def test_plain_and_residual_cnns_have_the_same_weights_but_only_one_has_shortcuts():
    plain = fun.build_plain_cnn(6, width=8)
    residual = fun.build_residual_cnn(6, width=8)
    assert plain.count_params() == residual.count_params()
    assert sum(isinstance(layer, keras.layers.Add) for layer in residual.layers) == 3
    assert not any(isinstance(layer, keras.layers.Add) for layer in plain.layers)
    assert sum(isinstance(layer, keras.layers.Conv2D) for layer in plain.layers) == 7  # stem + 6
    with pytest.raises(ValueError, match="even"):
        fun.build_deep_cnn(5, residual=True)


def test_gradient_norms_vanish_in_a_deep_plain_net_but_not_with_shortcuts():
    keras.utils.set_random_seed(0)
    x, y = fun.make_texture_task(32, size=16, seed=0)
    plain = fun.gradient_norms(fun.build_plain_cnn(20, input_shape=(16, 16, 1)), x, y)
    keras.utils.set_random_seed(0)
    residual = fun.gradient_norms(fun.build_residual_cnn(20, input_shape=(16, 16, 1)), x, y)
    assert list(plain.columns) == ["layer", "depth", "grad_norm"]
    assert len(plain) == len(residual) == 22  # stem + 20 convs + classifier
    assert plain["depth"].tolist() == list(range(1, 23))
    assert (plain["grad_norm"] > 0).all()
    assert residual["grad_norm"].iloc[0] > 100 * plain["grad_norm"].iloc[0]


def test_texture_task_is_seeded_balanced_and_one_hot():
    x, y = fun.make_texture_task(300, size=24, seed=3)
    x2, _ = fun.make_texture_task(300, size=24, seed=3)
    assert x.shape == (300, 24, 24, 1) and x.dtype == np.float32 and y.shape == (300, 3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y.sum(axis=1), 1)
    assert y.sum(axis=0).min() > 60
    assert not np.array_equal(x, fun.make_texture_task(300, size=24, seed=4)[0])


def test_small_cnn_shapes_and_weights():
    model = fun.build_small_cnn((64, 64, 1), num_classes=3, widths=(16, 32, 64))
    assert model.output.shape[1:] == (3,)
    convs = 9 * 1 * 16 + 9 * 16 * 32 + 9 * 32 * 64  # no bias: batch normalization follows
    assert model.count_params() == convs + 4 * (16 + 32 + 64) + 64 * 3 + 3


def test_quoted_results_carry_a_source_and_say_what_they_measure():
    for row in fun.QUOTED_IMAGENET_RESULTS:
        assert row["source"] and row["protocol"]
        assert row["metric"] in (None, "error", "accuracy")
        if row["metric"] is not None:
            assert 0 < row["top1"] < 100 and 0 < row["top5"] < 100
            assert (row["top1"] > row["top5"]) == (row["metric"] == "error")
    assert math.isclose(
        next(r for r in fun.QUOTED_IMAGENET_RESULTS if r["model"] == "ResNet50")["top1"], 22.85
    )

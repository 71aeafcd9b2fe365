"""Training: the two stages, batches that depend on (seed, epoch) only, and an exact resume."""

import json

import keras
import numpy as np
import pytest

from covid_tutorial import bench, feed, train
from covid_tutorial.data.table import load_dataset, one_hot
from covid_tutorial.data.images import load_images
from covid_tutorial.errors import RunError
from covid_tutorial.models import (
    backbone_layers,
    build_classifier,
)
from covid_tutorial.train import (
    EpochBatches,
    TrainingCheckpoint,
    recalibrate_batchnorm,
    seed_everything,
    train_two_stage,
)

SIZE = 32  # ResNet50's smallest input: the graph is real, the arithmetic is cheap


@pytest.fixture(scope="module")
def tiny(phantom_dir):
    """24 training and 8 validation phantom images at 32 px, with one-hot labels."""
    table = load_dataset(phantom_dir).sort_values("path").reset_index(drop=True)
    images, table = load_images(table, SIZE, progress=False)
    labels = one_hot(table["label"])
    rng = np.random.default_rng(0)
    pick = rng.permutation(len(images))[:32]
    train, val = pick[:24], pick[24:]
    return {
        "train": EpochBatches(images[train], labels[train], batch_size=8, seed=3),
        "val": (np.repeat(images[val][..., None], 3, -1).astype("float32"), labels[val]),
    }


def fresh_model(backbone="resnet50"):
    seed_everything(0)
    return build_classifier(backbone, 3, SIZE, weights=None, seed=0)


class Crash(keras.callbacks.Callback):
    """Stops the process the hard way, in the middle of an epoch, as a power cut would."""

    def __init__(self, stage_epochs_seen: int, batch: int = 1):
        super().__init__()
        self.target, self.batch, self.epochs_seen = stage_epochs_seen, batch, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs_seen += 1

    def on_train_batch_end(self, batch, logs=None):
        if self.epochs_seen == self.target and batch == self.batch:
            raise KeyboardInterrupt("simulated crash")


def two_stages(model, data, **kwargs):
    return train_two_stage(
        model, data["train"], data["val"], pretrained=True, head_epochs=2, fine_tune_epochs=2,
        learning_rate=1e-3, verbose=0, **kwargs,
    )


def test_epoch_batches_depend_only_on_seed_stage_and_epoch(tiny):
    batches = tiny["train"]
    assert batches.steps_per_epoch == 3
    whole = [y.numpy() for _, y in batches.dataset(0, 3, stage_index=1)]
    later = [y.numpy() for _, y in batches.dataset(2, 3, stage_index=1)]
    assert len(whole) == 9 and len(later) == 3
    for a, b in zip(whole[6:], later):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(batches.order(0), batches.order(1)), "a new order every epoch"
    assert not np.array_equal(batches.order(0, 0), batches.order(0, 1)), "and every stage"
    x, _ = next(iter(batches.dataset(0, 1)))
    assert x.shape == (8, SIZE, SIZE, 3) and x.dtype == "float32"


def test_two_stage_trainable_counts_and_learning_rates(tiny, tmp_path):
    model = fresh_model()
    checkpoint = TrainingCheckpoint(tmp_path / "ckpt")
    history = train_two_stage(
        model, tiny["train"], tiny["val"], pretrained=True, head_epochs=1, fine_tune_epochs=1,
        learning_rate=1e-3, verbose=0, checkpoint=checkpoint,
    )
    counts = history.attrs["trainable_parameters"]
    assert counts["head"] == 2048 * 3 + 3, "stage 1: only the new Dense head learns"
    conv5 = [l for l in backbone_layers(model) if l.name.startswith("conv5_") and not isinstance(l, keras.layers.BatchNormalization)]
    assert counts["fine_tune"] == counts["head"] + sum(l.count_params() for l in conv5), "stage 2: + conv5, BatchNorm frozen"
    assert list(history["stage"]) == ["head", "fine_tune"]
    np.testing.assert_allclose(history["learning_rate"], [1e-3, 1e-4], rtol=1e-6)
    state = json.loads((tmp_path / "ckpt" / "state.json").read_text())
    assert state["stage"] == "fine_tune" and state["stage_done"]
    kept = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert kept == ["model-1-001-end", "state.json"], "older epochs' files are removed"


def test_resume_after_a_crash_gives_the_weights_of_an_uninterrupted_run(tiny, tmp_path):
    # VGG16 because it compiles in seconds; the checkpoint does not care which backbone it holds
    reference = fresh_model("vgg16")
    expected = two_stages(reference, tiny)

    crashed = fresh_model("vgg16")
    with pytest.raises(KeyboardInterrupt):  # in the middle of the second fine-tuning epoch
        two_stages(crashed, tiny, checkpoint=TrainingCheckpoint(tmp_path / "ckpt"), callbacks=[Crash(4)])
    checkpoint = TrainingCheckpoint(tmp_path / "ckpt").load()
    assert checkpoint.state["stage"] == "fine_tune" and checkpoint.state["epoch"] == 0
    resumed_model = checkpoint.load_model()
    resumed = two_stages(resumed_model, tiny, checkpoint=checkpoint)

    assert list(resumed["stage"]) == list(expected["stage"])
    np.testing.assert_allclose(resumed["loss"], expected["loss"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(resumed["val_loss"], expected["val_loss"], rtol=1e-4, atol=1e-5)
    for ours, theirs in zip(resumed_model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_resume_refuses_other_settings(tmp_path):
    checkpoint = TrainingCheckpoint(tmp_path / "ckpt", {"batch_size": 8})
    with pytest.raises(RunError, match="no training checkpoint"):
        checkpoint.load()
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "state.json").write_text(json.dumps({"fingerprint": {"batch_size": 16}}))
    with pytest.raises(RunError, match="batch_size: was 16, now 8"):
        checkpoint.load()


def test_recalibrate_batchnorm_sets_the_running_mean_to_the_data_mean(gray_images):
    model = build_classifier("resnet50", 3, 64, weights=None, seed=0)
    model.get_layer("conv2_block1_1_bn").trainable = False
    frozen_before = model.get_layer("conv2_block1_1_bn").moving_mean.numpy().copy()
    momentum_before = model.get_layer("conv1_bn").momentum
    conv = keras.Model(model.input, model.get_layer("conv1_conv").output)
    expected = conv(np.repeat(gray_images[..., None], 3, -1).astype("float32")).numpy().mean(axis=(0, 1, 2))
    count = recalibrate_batchnorm(model, gray_images, batch_size=1)
    assert count == 52  # ResNet50 has 53 BatchNormalization layers; one is frozen
    np.testing.assert_allclose(model.get_layer("conv1_bn").moving_mean.numpy(), expected, rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(model.get_layer("conv2_block1_1_bn").moving_mean.numpy(), frozen_before)
    assert model.get_layer("conv1_bn").momentum == momentum_before and model.get_layer("augment").rotation == 10.0


def test_mixed_precision_copy_keeps_inputs_and_output_in_float32():
    keras.backend.clear_session()
    model = build_classifier("vgg16", 3, 32, weights=None, seed=0)
    mixed = train.to_mixed_precision(model)
    assert keras.config.dtype_policy().name == "float32", "the global policy is left as it was"
    assert mixed.get_layer("preprocess").compute_dtype == "float32"
    assert mixed.get_layer("block1_conv1").compute_dtype == "float16"
    assert mixed.get_layer("block1_conv1").kernel.dtype == "float32", "variables stay float32"
    assert mixed.get_layer("predictions").compute_dtype == "float32" and mixed.output.dtype == "float32"
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(mixed(images, training=False), model(images, training=False), atol=2e-2)
    mixed.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
    assert isinstance(mixed.optimizer, keras.optimizers.LossScaleOptimizer), "small float16 gradients are scaled up"


def test_execution_options_reach_the_fit_of_train_two_stage():
    from covid_tutorial.train import train_two_stage

    keras.backend.clear_session()
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(keras.layers.Conv2D(2, 3)(inputs))
    x = keras.layers.Dense(3, name="head_logits")(keras.layers.Dropout(0.1, name="head_dropout")(x))
    model = keras.Model(inputs, keras.layers.Activation("softmax", name="predictions")(x))
    images = np.random.default_rng(0).uniform(0, 255, (8, 8, 8)).astype("uint8")
    labels = np.eye(3, dtype="float32")[np.arange(8) % 3]
    batches = feed.HostAugmentedBatches(images, labels, batch_size=4, seed=0)
    first = next(iter(batches.dataset(0, 1)))[0].numpy()
    assert first.shape == (4, 8, 8, 3) and not np.allclose(first, np.repeat(images[batches.order(0)[:4]][..., None], 3, -1))
    val = (np.repeat(images[..., None], 3, -1).astype("float32"), labels)
    options = train.ExecutionOptions(jit_compile=True)
    model.jit_compile = False
    history = train_two_stage(model, batches, val, pretrained=False, head_epochs=1, fine_tune_epochs=0,
                              learning_rate=1e-3, verbose=0, callbacks=[options])  # fmt: skip
    assert len(history) == 1 and model.jit_compile is True and model.run_eagerly is False
    train_two_stage(model, batches, val, pretrained=False, head_epochs=1, fine_tune_epochs=0, learning_rate=1e-3,
                    verbose=0, callbacks=[train.ExecutionOptions(run_eagerly=True, jit_compile=True)])  # fmt: skip
    assert model.run_eagerly is True and model.jit_compile is False, "eager steps cannot be XLA-compiled"
    speed = bench.measure_training(model, batch_size=4, steps=1, jit_compile=True)
    assert speed["train_images_per_s"] > 0 and model.jit_compile is True

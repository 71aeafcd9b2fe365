"""Training on several devices of one machine (MirroredStrategy), checked on a CPU split in two.

TensorFlow fixes its devices when it starts, so the two-device run happens in a fresh
Python process: the CPU becomes two logical devices, and the same tiny network is trained
once with a MirroredStrategy over both (2 images per replica) and once on one device
(4 images per step, the same global batch). The two runs see the same batches in the same
order; only the order in which gradients are summed differs (each replica sums its own
half, then the two halves are added), so they agree to float32 rounding, not bit for bit.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from covid_tutorial.errors import CourseError
from covid_tutorial.train import distribution_strategy, global_batch_size

SCRIPT = textwrap.dedent(
    """
    import json, sys, tempfile
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from covid_tutorial.feed import dataset_from_arrays
    from covid_tutorial.errors import CourseError
    from covid_tutorial.models import build_classifier
    from covid_tutorial.train import (EpochBatches, TrainingCheckpoint, distribution_strategy, fit_stage,
                                      global_batch_size, seed_everything)

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 32, 32), dtype=np.uint8)
    labels = np.eye(3, dtype=np.float32)[np.arange(8) % 3]

    def train(strategy, per_replica):
        seed_everything(0)
        with strategy.scope():
            model = build_classifier("vgg16", 3, 32, weights=None, augment=False, dropout=0.0, seed=0)
        batch = global_batch_size(per_replica, strategy)
        batches = EpochBatches(images, labels, batch_size=batch, seed=0)
        val = dataset_from_arrays(images[:4], labels[:4], batch_size=batch)
        checkpoint = TrainingCheckpoint(tempfile.mkdtemp(), {"replicas": strategy.num_replicas_in_sync})
        history = fit_stage(model, batches, val, stage="full", epochs=2, learning_rate=1e-3, verbose=0,
                            checkpoint=checkpoint)
        return model, history, batch

    two = distribution_strategy("mirrored", ["/cpu:0", "/cpu:1"])
    mirrored, mirrored_history, mirrored_batch = train(two, per_replica=2)
    single, single_history, single_batch = train(distribution_strategy(None), per_replica=4)
    difference = max(float(np.max(np.abs(a - b))) for a, b in zip(mirrored.get_weights(), single.get_weights()))
    scale = max(float(np.max(np.abs(b))) for b in single.get_weights())
    try:  # 5 images in batches of 4: the last batch would leave one device without an image
        fit_stage(mirrored, EpochBatches(images[:5], labels[:5], batch_size=4), None, stage="full", epochs=1,
                  learning_rate=1e-3, verbose=0)
        refused = ""
    except CourseError as err:
        refused = str(err)
    print(json.dumps({
        "replicas": two.num_replicas_in_sync,
        "devices": list(two.extended.worker_devices),
        "batches": [mirrored_batch, single_batch],
        "loss": [mirrored_history["loss"].tolist(), single_history["loss"].tolist()],
        "val_loss": [mirrored_history["val_loss"].tolist(), single_history["val_loss"].tolist()],
        "weight_difference": difference,
        "weight_scale": scale,
        "refused": refused,
    }))
    """
)


def test_two_replicas_train_like_one_device_with_the_same_global_batch():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(result)
    assert result["replicas"] == 2 and len(result["devices"]) == 2
    assert result["batches"] == [4, 4], "2 images per replica x 2 replicas = the one-device batch"
    (mirrored_loss, single_loss), (mirrored_val, single_val) = result["loss"], result["val_loss"]
    assert len(mirrored_loss) == len(single_loss) == 2
    assert mirrored_loss == pytest.approx(single_loss, rel=1e-4, abs=1e-5)
    assert mirrored_val == pytest.approx(single_val, rel=1e-4, abs=1e-5)
    assert result["weight_difference"] <= 1e-4 * max(1.0, result["weight_scale"])
    assert "cannot be shared by 2 devices" in result["refused"]


def test_strategy_choices_and_their_errors():
    assert distribution_strategy(None).num_replicas_in_sync == 1
    assert global_batch_size(16) == 16
    with pytest.raises(CourseError, match="mirrored"):
        distribution_strategy("ring")
    with pytest.raises(CourseError, match="--distribute mirrored"):
        distribution_strategy(None, devices="/gpu:0,/gpu:1")

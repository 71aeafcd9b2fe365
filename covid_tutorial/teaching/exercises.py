"""Self-checks for the notebooks' exercises, in the style of Kaggle Learn.

An exercise cell of notebooks 01-10 ends with ``check("04.9", answer)``, which says one of
three things: correct; incorrect, with what is off; or not yet attempted (the starter
value, ``None`` or a function that still raises ``NotImplementedError``, is untouched).
``hint("04.9")`` and ``solution("04.9")`` show the texts of ``exercises.toml``, where the
titles, hints and solutions live; this module holds one small check per exercise. Every
check compares the answer with what a library computes (Keras, scikit-learn, NumPy, or
the course's own functions), never with a number typed in by hand. Everything works
offline: the checks build their own small examples.
"""

from __future__ import annotations

import dataclasses
import functools
import html
import math
import tomllib
from collections.abc import Callable, Mapping
from importlib import resources

import keras
import numpy as np
from sklearn.metrics import cohen_kappa_score, f1_score, recall_score, roc_curve
from sklearn.utils.class_weight import compute_class_weight

from ..decisions import TemperatureScaling, net_benefit
from ..errors import CourseError
from ..explain import activation_statistics, mask_outside_box
from ..metrics import logit_interval, pareto_front
from ..models import ALPHA, BETA, GAMMA, get_backbone
from .fundamentals import bottleneck_residual_block

__all__ = [
    "CheckResult",
    "ExerciseText",
    "UnknownExerciseError",
    "exercise_ids",
    "check",
    "hint",
    "solution",
]

_COLOURS = {"correct": "#1a7f37", "incorrect": "#cf222e", "unattempted": "#9a6700"}
_LABELS = {"correct": "Correct", "incorrect": "Incorrect", "unattempted": "Not yet attempted"}
_TEXT_FIELDS = ("title", "hint", "solution", "explanation")


class UnknownExerciseError(CourseError, LookupError):
    """An exercise id that ``exercises.toml`` does not hold."""


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """What :func:`check` found: ``status`` is "correct", "incorrect" or "unattempted"."""

    exercise_id: str
    status: str
    message: str

    def __repr__(self) -> str:
        return f"{_LABELS[self.status]}: {self.message}"

    def _repr_markdown_(self) -> str:
        label = f'<span style="color:{_COLOURS[self.status]}">**{_LABELS[self.status]}**</span>'
        # an answer's repr such as <function ...> must not read as an HTML tag; code spans stay as they are
        parts = self.message.split("`")
        message = "`".join(html.escape(part, quote=False) if i % 2 == 0 else part for i, part in enumerate(parts))
        return f"{label}: {message}"


@dataclasses.dataclass(frozen=True)
class ExerciseText:
    """A hint or a solution, shown as markdown in a notebook and as plain text elsewhere."""

    exercise_id: str
    kind: str
    markdown: str

    def __str__(self) -> str:
        return self.markdown

    __repr__ = __str__

    def _repr_markdown_(self) -> str:
        return self.markdown


class _Wrong(Exception):
    """Raised inside a check: the answer is wrong, and the message says how."""


@functools.cache
def _texts() -> dict[str, dict[str, str]]:
    data = tomllib.loads(resources.files(__package__).joinpath("exercises.toml").read_text(encoding="utf-8"))
    return data["exercises"]


def exercise_ids() -> list[str]:
    """Every exercise id, in course order ("01.4", "01.8", ..., "04.9", "04.10")."""
    return sorted(_texts(), key=lambda exercise_id: tuple(int(part) for part in exercise_id.split(".")))


def _entry(exercise_id) -> dict[str, str]:
    texts = _texts()
    if exercise_id not in texts:
        raise UnknownExerciseError(
            f"There is no exercise {exercise_id!r}. The exercises are: {', '.join(exercise_ids())}."
        )
    return texts[exercise_id]


def hint(exercise_id: str) -> ExerciseText:
    """The hint of an exercise, as markdown."""
    entry = _entry(exercise_id)
    return ExerciseText(exercise_id, "hint", f"**Hint {exercise_id}, {entry['title']}.** {entry['hint'].strip()}")


def solution(exercise_id: str) -> ExerciseText:
    """The worked solution of an exercise: its code and why it is right, as markdown."""
    entry = _entry(exercise_id)
    code = entry["solution"].strip("\n")
    text = (
        f"**Solution {exercise_id}, {entry['title']}.**\n\n```python\n{code}\n```\n\n{entry['explanation'].strip()}"
    )
    return ExerciseText(exercise_id, "solution", text)


def check(exercise_id: str, answer) -> CheckResult:
    """Check an answer: correct, incorrect (with what is off), or not yet attempted."""
    _entry(exercise_id)
    checker = _CHECKS[exercise_id]
    unattempted = CheckResult(
        exercise_id,
        "unattempted",
        "write your answer in place of the starter code and run the cell again; "
        f'`hint("{exercise_id}")` helps, `solution("{exercise_id}")` shows one answer.',
    )
    if answer is None or answer is Ellipsis:
        return unattempted
    try:
        checker(answer)
    except NotImplementedError:
        return unattempted
    except _Wrong as wrong:
        return CheckResult(exercise_id, "incorrect", f'{wrong} (`hint("{exercise_id}")` gives a hint)')
    except Exception as err:  # an answer of the wrong kind: say so, never a traceback
        return CheckResult(
            exercise_id,
            "incorrect",
            f"checking your answer raised {type(err).__name__}: {err}. Compare its form with the task.",
        )
    return CheckResult(exercise_id, "correct", "well done.")


_CHECKS: dict[str, Callable[[object], None]] = {}


def _checks(exercise_id: str):
    def register(function):
        _CHECKS[exercise_id] = function
        return function

    return register


# ---------------------------------------------------------------- helpers


def _call(function, description: str, *args):
    """Call the learner's function; its errors become a message naming the inputs."""
    if not callable(function):
        raise _Wrong(f"pass your function itself, not {type(function).__name__}")
    try:
        return function(*args)
    except NotImplementedError:
        raise
    except Exception as err:
        raise _Wrong(f"your function raised {type(err).__name__}: {err} for {description}") from None


def _number(value, what: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise _Wrong(f"{what} should be a number, not {value!r}")
    return float(value)


def _numbers(value, count: int, what: str) -> tuple[float, ...]:
    if not isinstance(value, (tuple, list, np.ndarray)) or len(value) != count:
        raise _Wrong(f"answer with {what}, not {value!r}")
    return tuple(_number(v, what) for v in value)


def _array(value, shape: tuple, what: str) -> np.ndarray:
    array = np.asarray(value)
    if array.shape != shape:
        raise _Wrong(f"{what} should have shape {shape}; yours has shape {array.shape}")
    return array


def _mask(value, length: int, what: str) -> np.ndarray:
    array = np.asarray(value)
    if array.shape != (length,) or not np.isin(array, [0, 1]).all():
        raise _Wrong(f"{what} should be one True or False per item ({length} values); yours is {array!r:.80}")
    return array.astype(bool)


def _answers(truth: np.ndarray, confusions, rng) -> np.ndarray:
    """``truth`` with each (true class, answer, rate) applied: that share of the class answered wrongly."""
    answers = truth.copy()
    for true_class, answer, rate in confusions:
        answers[(truth == true_class) & (rng.random(len(truth)) < rate)] = answer
    return answers


def _listed(values) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


# ---------------------------------------------------------------- 01 CNN fundamentals


def _keras_output_size(n: int, k: int, s: int, padding) -> int:
    shape = (None, n, n, 1)
    if not isinstance(padding, str):
        shape = keras.layers.ZeroPadding2D(padding).compute_output_shape(shape)
        padding = "valid"
    return int(keras.layers.Conv2D(1, k, strides=s, padding=padding).compute_output_shape(shape)[1])


@_checks("01.4")
def _batchnorm_weights(answer) -> None:
    layer = keras.layers.BatchNormalization()
    layer.build((None, 8, 8, 64))
    total, trained = layer.count_params(), sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
    yours_total, yours_trained = _numbers(answer, 2, "a pair of whole numbers (all weights, trained weights)")
    if yours_total != total:
        why = "count the numbers it keeps per channel"
        if yours_total == trained:
            why = "γ and β are only half of what the layer stores"
        raise _Wrong(f"your total, {yours_total:g}, is not what Keras' count_params() gives: {why}")
    if yours_trained != trained:
        raise _Wrong(
            f"your count of trained weights, {yours_trained:g}, is off: the moving mean and variance are "
            "updated by the layer itself, not by the optimiser"
        )


@_checks("01.8")
def _output_size(answer) -> None:
    cases = [(32, 3, 2, "valid"), (32, 3, 2, "same"), (64, 5, 1, "same"), (224, 7, 2, 3), (227, 11, 4, "valid"),
             (7, 3, 2, "same"), (10, 4, 3, "valid"), (15, 5, 2, "same"), (56, 1, 2, 0), (28, 3, 1, 1)]
    for n, k, s, padding in cases:
        description = f"size {n}, kernel {k}, stride {s}, padding {padding!r}"
        yours = _call(answer, description, n, k, s, padding)
        expected = _keras_output_size(n, k, s, padding)
        if yours is None or _number(yours, "the output size") != expected:
            raise _Wrong(f"your function returns {yours} for {description}; expected {expected} (what Keras computes)")


@_checks("01.9")
def _conv_weights(answer) -> None:
    for k, channels, filters, use_bias in [(3, 1, 32, True), (3, 3, 64, True), (5, 16, 8, False), (1, 256, 64, True)]:
        description = f"a {k}x{k} kernel, {channels} input channels, {filters} filters, use_bias={use_bias}"
        yours = _call(answer, description, k, channels, filters, use_bias)
        layer = keras.layers.Conv2D(filters, k, use_bias=use_bias)
        layer.build((None, None, None, channels))
        expected = layer.count_params()
        if yours is None or _number(yours, "the number of weights") != expected:
            why = ""
            if yours == expected - filters and use_bias:
                why = ": each filter also has a bias"
            elif yours == k * k * filters + filters * use_bias and channels > 1:
                why = ": each filter spans all the input channels"
            raise _Wrong(f"your function returns {yours} for {description}; Keras' Conv2D has {expected}{why}")


# ---------------------------------------------------------------- 02 ResNet


@_checks("02.8")
def _bottleneck_weights(answer) -> None:
    def block(projection=None):
        inputs = keras.Input((56, 56, 256))
        return keras.Model(inputs, bottleneck_residual_block(inputs, 64, projection=projection, name="b"))

    model = block()
    yours = _number(answer, "the number of weights")
    total = model.count_params()
    if yours == total:
        return
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    trained = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    wrong_turns = {
        sum(layer.count_params() for layer in convs): "you left out the batch normalizations: four numbers per channel",
        total - sum(layer.filters for layer in convs): "you left out the convolutions' biases (Keras keeps them)",
        trained: "count_params() also counts BatchNorm's moving mean and variance, not only the trained weights",
        block(projection=True).count_params(): (
            "256 channels in and out at stride 1: the shortcut is the identity, which has no weights"
        ),
    }
    raise _Wrong(wrong_turns.get(yours, f"{yours:g} is not the count of Keras' count_params() on the block"))


@_checks("02.9")
def _needs_projection(answer) -> None:
    cases = [((56, 56, 64), 64, 1), ((56, 56, 64), 128, 2), ((56, 56, 64), 64, 2), ((56, 56, 64), 128, 1),
             ((7, 7, 512), 512, 1), ((28, 28, 128), 128, 1)]
    for shape, filters, stride in cases:
        description = f"an input of shape {shape}, {filters} filters and stride {stride}"
        yours = _call(answer, description, shape, filters, stride)
        if not isinstance(yours, (bool, np.bool_)):
            raise _Wrong(f"return True or False; your function returns {yours!r} for {description}")
        main = keras.layers.Conv2D(filters, 3, strides=stride, padding="same").compute_output_shape((None, *shape))
        expected = tuple(main[1:]) != tuple(shape)
        if yours != expected:
            if expected:
                raise _Wrong(
                    f"for {description} you keep the identity, but the main path gives shape {tuple(main[1:])} "
                    f"(Keras), which cannot be added to {shape}"
                )
            raise _Wrong(
                f"for {description} the main path keeps the shape {shape} (Keras): the identity fits, with no weights"
            )


# ---------------------------------------------------------------- 03 data preparation


def _patient_ids(patients: int = 40, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ids = np.repeat([f"P{i:03d}" for i in range(patients)], rng.integers(1, 6, size=patients))
    rng.shuffle(ids)
    return ids


@_checks("03.7")
def _patient_wise_split(answer) -> None:
    ids = _patient_ids()
    patients = len(np.unique(ids))
    for test_size, seed in [(0.25, 0), (0.5, 1)]:
        description = f"{len(ids)} images of {patients} patients, test_size={test_size}, seed={seed}"
        is_test = _mask(_call(answer, description, ids, test_size, seed), len(ids), "the split")
        in_test, in_train = set(ids[is_test]), set(ids[~is_test])
        for patient in sorted(in_test & in_train):
            raise _Wrong(
                f"patient {patient} has {np.sum(is_test & (ids == patient))} images in the test set and "
                f"{np.sum(~is_test & (ids == patient))} in the training set ({description}): "
                "a patient-wise split keeps all of a patient's images on one side"
            )
        if abs(len(in_test) / patients - test_size) > 0.1:
            raise _Wrong(
                f"{len(in_test)} of {patients} patients are in the test set for {description}: "
                "test_size is the share of patients"
            )


@_checks("03.8")
def _balanced_weights(answer) -> None:
    rng = np.random.default_rng(3)
    cases = [np.array(["Normal"] * 1000 + ["COVID-19"] * 100),
             rng.choice(["COVID-19", "Normal", "Pneumonia"], p=[0.1, 0.6, 0.3], size=200)]
    for labels in cases:
        classes, counts = np.unique(labels, return_counts=True)
        description = "labels with " + ", ".join(f"{n} {c}" for c, n in zip(classes, counts))
        yours = _call(answer, description, labels)
        if not isinstance(yours, Mapping) and not hasattr(yours, "to_dict"):
            raise _Wrong(f"return a dict from class name to weight; yours is {yours!r:.80}")
        yours = dict(yours.to_dict() if hasattr(yours, "to_dict") else yours)
        expected = compute_class_weight("balanced", classes=classes, y=labels)
        if set(map(str, yours)) != set(classes):
            raise _Wrong(f"for {description} your dict has the keys {sorted(map(str, yours))}; expected one per class")
        for name, weight in zip(classes, expected):
            if not np.isclose(_number(yours[name], "a weight"), weight):
                raise _Wrong(
                    f"for {description} you give {name} the weight {yours[name]:.4g}; scikit-learn's "
                    f'compute_class_weight("balanced") gives {weight:.4g}'
                )


# ---------------------------------------------------------------- 04 transfer learning


def _covid_scores(n: int = 60, seed: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    is_covid = rng.random(n) < 0.35
    p_covid = np.clip(rng.normal(np.where(is_covid, 0.65, 0.35), 0.2), 0, 1).round(2)  # rounded: ties happen
    return is_covid, p_covid


@_checks("04.9")
def _sensitivity_specificity(answer) -> None:
    is_covid, p_covid = _covid_scores()
    for threshold in (0.5, 0.3, float(p_covid[is_covid][0])):
        description = f"threshold {threshold:g} ({len(p_covid)} images, {is_covid.sum()} of them COVID-19)"
        yours = _call(answer, description, is_covid, p_covid, threshold)
        yours = _numbers(yours, 2, "a pair (sensitivity, specificity)")
        said = p_covid >= threshold
        expected = (recall_score(is_covid, said), recall_score(~is_covid, ~said))
        if np.allclose(yours, expected):
            continue
        why = ""
        if np.allclose(yours, expected[::-1]):
            why = ": you swapped them"
        elif np.allclose(yours, (np.mean(p_covid[is_covid] > threshold), np.mean(p_covid[~is_covid] <= threshold))):
            why = ": a score equal to the threshold counts as COVID-19 (p >= threshold)"
        raise _Wrong(
            f"at {description} you return ({yours[0]:.3f}, {yours[1]:.3f}); expected ({expected[0]:.3f}, "
            f"{expected[1]:.3f}), scikit-learn's recall_score of each class{why}"
        )


def _small_backbone() -> keras.Model:
    inputs = keras.Input((16, 16, 3), name="image")
    x = inputs
    for i in (1, 2, 3):
        x = keras.layers.Conv2D(4, 3, padding="same", name=f"block{i}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"block{i}_bn")(x)
        x = keras.layers.Activation("relu", name=f"block{i}_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="head_logits")(x), name="small")


@_checks("04.10")
def _freeze_for_fine_tuning(answer) -> None:
    for top_layers, start_trainable in [(5, True), (8, False)]:
        model = _small_backbone()
        for layer in model.layers:
            layer.trainable = start_trainable
        state = "trainable" if start_trainable else "frozen"
        description = f"top_layers={top_layers} on a model whose layers were all {state}"
        _call(answer, description, model, top_layers)
        top = model.layers[-top_layers:]
        expected = {l.name for l in top if l.weights and not isinstance(l, keras.layers.BatchNormalization)}
        yours = {layer.name for layer in model.layers if layer.trainable_weights}
        for name in sorted(yours - expected):
            layer = model.get_layer(name)
            if isinstance(layer, keras.layers.BatchNormalization) and layer in top:
                raise _Wrong(
                    f"with {description}, `{name}` is trainable: in stage 2 every BatchNormalization stays frozen"
                )
            raise _Wrong(f"with {description}, `{name}` is trainable, but it is not among the last {top_layers} layers")
        for name in sorted(expected - yours):
            raise _Wrong(f"with {description}, `{name}` is frozen, but it is among the last {top_layers} layers")


@_checks("04.11")
def _threshold_for_target(answer) -> None:
    is_covid, p_covid = _covid_scores()
    false_positive_rate, sensitivity, thresholds = roc_curve(is_covid, p_covid, drop_intermediate=False)
    for target in (0.8, 0.9, 1.0):
        description = f"target {target:g}"
        yours = _number(_call(answer, description, is_covid, p_covid, target), "the threshold")
        expected = float(thresholds[np.argmax(sensitivity >= target)])
        if np.isclose(yours, expected):
            continue
        found = np.mean(p_covid[is_covid] >= yours)
        if found < target:
            raise _Wrong(f"for {description} your threshold {yours:.3g} finds only {found:.0%} of the COVID-19 images")
        raise _Wrong(
            f"for {description} your threshold {yours:.3g} finds {found:.0%} of the COVID-19 images, but a higher one, "
            f"{expected:.3g} (scikit-learn's roc_curve), still reaches the target at less cost in specificity"
        )


# ---------------------------------------------------------------- 05 EfficientNet and the comparison


@_checks("05.1")
def _phi_for_b8(answer) -> None:
    base = get_backbone("EfficientNetB0").native_size
    yours = _number(answer, "φ")
    expected = math.log(672 / base) / math.log(GAMMA)
    if abs(yours - expected) <= 0.05:
        return
    for name, constant in (("depth", ALPHA), ("width", BETA)):
        if abs(yours - math.log(672 / base) / math.log(constant)) <= 0.05:
            raise _Wrong(f"that φ uses the {name} constant {constant}; the resolution rule is r = {GAMMA}^φ")
    raise _Wrong(
        f"with φ = {yours:g} the resolution rule gives {base} · {GAMMA}^φ = {base * GAMMA**yours:.0f} px, not 672"
    )


@_checks("05.7")
def _logit_interval(answer) -> None:
    mean, se, t = 0.90, 0.08, 4.30
    low, high = (float(v) for v in logit_interval(mean, se, t))
    yours = _numbers(answer, 2, "a pair (low, high)")
    if np.allclose(yours, (low, high), atol=0.005):
        return
    if np.allclose(yours, (mean - t * se, mean + t * se), atol=0.005):
        raise _Wrong(
            "that is the plain interval mean ± t · se, whose upper end is above 1; form it on the logit scale"
        )
    centre = math.log(mean / (1 - mean))
    without_delta = tuple(1 / (1 + math.exp(-(centre + sign * t * se))) for sign in (-1, 1))
    if np.allclose(yours, without_delta, atol=0.005):
        raise _Wrong("carry the standard error to the logit scale first (delta method: se / (m (1 − m)))")
    raise _Wrong(f"({yours[0]:.3f}, {yours[1]:.3f}) is not the logit-scale interval of metrics.logit_interval")


@_checks("05.8")
def _pareto(answer) -> None:
    rng = np.random.default_rng(5)
    cases = [(rng.uniform(1, 50, 8).round(1), rng.uniform(0.5, 0.9, 8).round(3)),
             (np.array([1.0, 1.0, 2.0, 3.0]), np.array([0.7, 0.7, 0.8, 0.8]))]
    for cost, score in cases:
        description = f"cost {_listed(cost)} and score {_listed(score)}"
        yours = _mask(_call(answer, description, cost, score), len(cost), "the front")
        expected = pareto_front(cost, score)
        for i in np.flatnonzero(yours != expected):
            if yours[i]:
                j = next(j for j in range(len(cost)) if cost[j] <= cost[i] and score[j] >= score[i] and j != i
                         and (cost[j] < cost[i] or score[j] > score[i]))
                raise _Wrong(
                    f"for {description} you put model {i} on the front, but model {j} is at least as cheap and "
                    "at least as good, and better in one"
                )
            raise _Wrong(
                f"for {description} you leave model {i} off the front, but no other model is at least as cheap "
                "and at least as good, and better in one"
            )


# ---------------------------------------------------------------- 06 Grad-CAM


def _gradcam_example(seed: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    feature_maps = np.abs(rng.normal(size=(4, 6, 5)))  # u x v positions, K maps, after a ReLU
    gradients = rng.normal(size=(4, 6, 5))
    return feature_maps, gradients


@_checks("06.8")
def _channel_weights(answer) -> None:
    _, gradients = _gradcam_example()
    u, v, k = gradients.shape
    description = f"gradients of shape {gradients.shape}"
    yours = _array(_call(answer, description, gradients), (k,), f"one weight per feature map ({k} maps)")
    expected = gradients.mean(axis=(0, 1))
    if np.allclose(yours, expected):
        return
    if np.allclose(yours, expected * u * v):
        raise _Wrong(f"your weights are {u * v} times too large: average over the {u}x{v} positions, don't sum")
    raise _Wrong(
        f"for {description} your weights {_listed(yours.round(3))} differ from NumPy's mean over the positions"
    )


@_checks("06.9")
def _gradcam_map(answer) -> None:
    feature_maps, gradients = _gradcam_example()
    description = f"feature maps and gradients of shape {feature_maps.shape}"
    yours = _array(_call(answer, description, feature_maps, gradients), feature_maps.shape[:2], "the map (u x v)")
    weighted = (feature_maps * gradients.mean(axis=(0, 1))).sum(axis=-1)
    expected = np.maximum(weighted, 0)
    if np.allclose(yours, expected):
        return
    if np.allclose(yours, weighted):
        raise _Wrong("your map has negative values: keep only the positive part (the ReLU)")
    if np.allclose(yours, expected / expected.max()):
        raise _Wrong("you divided the map by its maximum: return it in score units, as the equation gives it")
    raise _Wrong(f"for {description} your map differs from the NumPy reference ReLU(sum_k alpha_k A^k)")


# ---------------------------------------------------------------- 07 intermediate activations


def _activation_examples(seed: int = 8) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    after_relu = np.maximum(rng.normal(size=(3, 6, 6, 10)) - 0.5, 0)
    after_relu[0, :, :, :3] = 0  # channels silent in one image
    after_relu[1, :, :, 2:5] = 0
    after_relu[:, :, :, 9] = 0  # a channel silent in every image
    return {"after a ReLU": after_relu, "without a ReLU (a linear bottleneck)": rng.normal(size=(3, 6, 6, 10))}


def _activation_check(answer, column: str, what: str, why: Callable[[np.ndarray, float], str]) -> None:
    for name, values in _activation_examples().items():
        description = f"activations {name} of shape {values.shape}"
        yours = _number(_call(answer, description, values), what)
        expected = float(activation_statistics({"layer": values})[column].iloc[0])
        if not np.isclose(yours, expected):
            raise _Wrong(
                f"for {description} you return {yours:.4g}; activation_statistics gives "
                f"{expected:.4g}{why(values, yours)}"
            )


@_checks("07.8")
def _sparsity(answer) -> None:
    def why(values, yours):
        return ": every value <= 0 counts, not only exact zeros" if np.isclose(yours, np.mean(values == 0)) else ""

    _activation_check(answer, "sparsity", "the sparsity", why)


@_checks("07.9")
def _dead_channels(answer) -> None:
    def why(values, yours):
        if np.isclose(yours, 1 - (values > 0).any(axis=(0, 1, 2)).mean()):
            return ": a channel is dead in one image when it has no positive value in that image; average over images"
        return ""

    _activation_check(answer, "dead_channels", "the share of dead channels", why)


# ---------------------------------------------------------------- 08 shortcut learning


def _tagged_images(tagged_class: str, seed: int = 9) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.array(["COVID-19", "Normal"] * 12)
    images = rng.integers(80, 160, size=(len(labels), 32, 32)).astype(np.uint8)
    images[labels == tagged_class, 2:6, 25:29] = 255  # a burned-in tag
    return images, labels


@_checks("08.3")
def _where_classes_differ(answer) -> None:
    for tagged_class in ("COVID-19", "Normal"):
        images, labels = _tagged_images(tagged_class)
        description = f"{len(images)} images whose {tagged_class} images carry a tag"
        yours = _call(answer, description, images, labels, "COVID-19", "Normal")
        if not isinstance(yours, (tuple, list, np.ndarray)) or len(yours) != 2:
            raise _Wrong(f"return a position (row, column); yours is {yours!r:.80}")
        difference = np.abs(images[labels == "COVID-19"].mean(axis=0) - images[labels == "Normal"].mean(axis=0))
        expected = np.unravel_index(difference.argmax(), difference.shape)
        row, column = (int(_number(v, "a row or column")) for v in yours)
        if not (0 <= row < difference.shape[0] and 0 <= column < difference.shape[1]):
            raise _Wrong(f"({row}, {column}) lies outside the {difference.shape} images")
        if difference[row, column] < 0.9 * difference.max():
            raise _Wrong(
                f"for {description} the mean images differ by {difference[row, column]:.1f} at ({row}, {column}), "
                f"but by {difference.max():.1f} at {tuple(map(int, expected))}: compare the size of the difference, "
                "whatever its sign"
            )


@_checks("08.7")
def _mask_outside(answer) -> None:
    rng = np.random.default_rng(10)
    images = rng.integers(1, 256, size=(3, 50, 40)).astype(np.uint8)
    for box in [(0.14, 0.92, 0.08, 0.92), (0.25, 0.5, 0.1, 0.6)]:
        given = images.copy()
        description = f"images of shape {images.shape} and box {box}"
        yours = _array(_call(answer, description, given, box), images.shape, "the masked images")
        expected = mask_outside_box(images, box)
        if not np.array_equal(given, images):
            raise _Wrong("your function changed the images it was given: mask a copy (np.array(images, copy=True))")
        wrong = np.argwhere(yours != expected)
        if len(wrong):
            k, row, column = wrong[0]
            where = "outside" if expected[k, row, column] == 0 else "inside"
            raise _Wrong(
                f"for {description}, pixel (row {row}, column {column}) of image {k} is {where} the box and should be "
                f"{expected[k, row, column]}, but is {yours[k, row, column]} (shortcuts.mask_outside_box)"
            )


@_checks("08.8")
def _recall_drop(answer) -> None:
    rng = np.random.default_rng(11)
    classes = np.array(["COVID-19", "Normal", "Pneumonia"])
    source_true = rng.choice(classes, size=90)
    shifted_true = rng.choice(classes, size=60)
    source_pred = _answers(source_true, [("Pneumonia", "Normal", 0.1)], rng)
    shifted_pred = _answers(shifted_true, [("Normal", "COVID-19", 0.6), ("COVID-19", "Normal", 0.2)], rng)
    description = "the course's three classes"
    yours = _call(answer, description, source_true, source_pred, shifted_true, shifted_pred)
    if not isinstance(yours, Mapping) and not hasattr(yours, "to_dict"):
        raise _Wrong(f"return a dict from class name to drop in recall; yours is {yours!r:.80}")
    yours = dict(yours.to_dict() if hasattr(yours, "to_dict") else yours)
    source = recall_score(source_true, source_pred, labels=classes, average=None)
    shifted = recall_score(shifted_true, shifted_pred, labels=classes, average=None)
    if set(map(str, yours)) != set(classes):
        raise _Wrong(f"your dict has the keys {sorted(map(str, yours))}; expected one per class: {list(classes)}")
    for name, before, after in zip(classes, source, shifted):
        drop = _number(yours[name], "a drop in recall")
        if not np.isclose(drop, before - after):
            sign = ": the drop is source minus shifted" if np.isclose(drop, after - before) else ""
            raise _Wrong(
                f"for {name} you give a drop of {drop:.3f}; scikit-learn's recall_score gives {before:.3f} on the "
                f"source test split and {after:.3f} on the shifted collection{sign}"
            )


# ---------------------------------------------------------------- 09 real radiographs


@_checks("09.4")
def _macro_f1_lost(answer) -> None:
    rng = np.random.default_rng(12)
    classes = ["COVID-19", "Normal", "Pneumonia"]
    own_true = rng.choice(classes, size=80)
    other_true = rng.choice(["COVID-19", "Normal"], size=60)  # the other collection lacks a class
    own_pred = _answers(own_true, [("Pneumonia", "Normal", 0.2)], rng)
    other_pred = _answers(other_true, [("Normal", "COVID-19", 0.7), ("COVID-19", "Normal", 0.3)], rng)
    description = "the course's three classes, on a second collection without Pneumonia"
    yours = _number(_call(answer, description, classes, own_true, own_pred, other_true, other_pred), "the F1 lost")
    own = f1_score(own_true, own_pred, labels=classes, average="macro", zero_division=0)
    other = f1_score(other_true, other_pred, labels=classes, average="macro", zero_division=0)
    if not np.isclose(yours, own - other):
        if np.isclose(yours, other - own):
            raise _Wrong("the loss is the held-out score minus the other collection's, not the reverse")
        present = sorted(set(other_true) | set(other_pred))
        only_present = own - f1_score(other_true, other_pred, labels=present, average="macro", zero_division=0)
        why = ": average over all of `classes`, also one the other collection lacks" if np.isclose(yours, only_present) else ""
        raise _Wrong(
            f"for {description} you give {yours:.3f}; scikit-learn's f1_score (average='macro') gives {own:.3f} on the "
            f"held-out images and {other:.3f} on the other collection, a loss of {own - other:.3f}{why}"
        )


@_checks("09.5")
def _agreement_beyond_chance(answer) -> None:
    rng = np.random.default_rng(13)
    truth = rng.choice(["COVID-19", "Normal", "Pneumonia"], size=90, p=[0.6, 0.2, 0.2])
    network = _answers(truth, [("Normal", "COVID-19", 0.5)], rng)
    for name, second in (("a classifier that mostly agrees", _answers(network, [("Pneumonia", "Normal", 0.2)], rng)),
                         ("one that always says COVID-19", np.full(len(truth), "COVID-19"))):
        description = f"the network's answers and those of {name}"
        yours = _number(_call(answer, description, network, second), "the agreement")
        expected = cohen_kappa_score(network, second)
        if not np.isclose(yours, expected):
            raw = np.mean(network == second)
            why = ": that is the raw share of equal answers, before the correction for chance" if np.isclose(yours, raw) else ""
            raise _Wrong(f"for {description} you give {yours:.3f}; scikit-learn's cohen_kappa_score gives {expected:.3f}{why}")


# ---------------------------------------------------------------- 10 from scores to decisions


@_checks("10.1")
def _net_benefit_at(answer) -> None:
    rng = np.random.default_rng(14)
    is_covid = rng.random(120) < 0.3
    p_covid = np.clip(np.where(is_covid, rng.normal(0.65, 0.2, 120), rng.normal(0.3, 0.2, 120)), 0, 1)
    p_covid[:5] = 0.25  # cases exactly at a threshold below: "reaches" means >=
    for threshold in (0.25, 0.5, 0.1):
        description = f"120 cases, 30% with COVID-19, at a threshold probability of {threshold}"
        yours = _number(_call(answer, description, is_covid, p_covid, threshold), "the net benefit")
        expected = float(net_benefit(is_covid, p_covid, [threshold])[0])
        if np.isclose(yours, expected):
            continue
        treated = p_covid >= threshold
        tp, fp = np.sum(treated & is_covid), np.sum(treated & ~is_covid)
        why = ""
        if np.isclose(yours, (tp - fp) / len(is_covid)):
            why = ": the false positives are weighted by p_t / (1 - p_t), the harm a threshold of p_t implies"
        elif np.isclose(yours, float(net_benefit(is_covid, p_covid - 1e-12, [threshold])[0])) or np.isclose(
                yours, (np.sum((p_covid > threshold) & is_covid) - np.sum((p_covid > threshold) & ~is_covid)
                        * threshold / (1 - threshold)) / len(is_covid)):
            why = ": a case whose probability equals the threshold is treated too (>=, not >)"
        elif np.isclose(yours, (tp - fp * threshold / (1 - threshold)) / max(is_covid.sum(), 1)):
            why = ": divide by all cases, not by those with COVID-19"
        raise _Wrong(f"for {description} you give {yours:.4f}; the course's decisions.net_benefit gives {expected:.4f}{why}")


@_checks("10.2")
def _apply_temperature(answer) -> None:
    rng = np.random.default_rng(15)
    logits = rng.normal(0, 2, (40, 3))
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    for temperature in (2.0, 0.5):
        description = f"40 images of three classes at a temperature of {temperature}"
        yours = np.asarray(_call(answer, description, probabilities, temperature), dtype=float)
        expected = TemperatureScaling(temperature, 0, 0, 0.0, 0.0).apply(probabilities)
        if yours.shape != expected.shape:
            raise _Wrong(f"for {description} your array has shape {yours.shape}; it should keep the shape {expected.shape}")
        if np.allclose(yours, expected, atol=1e-6):
            continue
        if np.allclose(yours, probabilities ** (1 / temperature), atol=1e-6):
            raise _Wrong("p ** (1 / T) is right up to a factor per image: divide each row by its sum, so it sums to 1")
        if np.allclose(yours, TemperatureScaling(1 / temperature, 0, 0, 0.0, 0.0).apply(probabilities), atol=1e-6):
            raise _Wrong("divide the log-probabilities by the temperature, do not multiply them")
        raise _Wrong(f"for {description} your probabilities differ from the course's TemperatureScaling.apply by up to "
                     f"{np.abs(yours - expected).max():.4f}")

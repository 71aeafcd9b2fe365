"""covid_tutorial.teaching.diagrams: block diagrams agree with Keras, the split picture with its tables."""

import io
import itertools
import re
from collections import defaultdict

import keras
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch
from matplotlib.text import Text
from matplotlib.transforms import Bbox
from sklearn.model_selection import train_test_split

from covid_tutorial.teaching.diagrams import (
    diagram_labels,
    draw_gradcam_flow,
    draw_mbconv_block,
    draw_patient_split,
    draw_residual_blocks,
    figure_texts,
)
from covid_tutorial.teaching.fundamentals import basic_residual_block
from covid_tutorial.data.splits import split_by_patient

CONV_LABEL = re.compile(r"^(\d+)×(\d+) conv, (\d+)")
BOTH_SIDES = re.compile(r"(\d+) of (\d+) patients on both sides")


def _conv(label: str) -> tuple[int, int]:
    """(kernel size, filters) read from a label such as '1×1 conv, 64'."""
    match = CONV_LABEL.match(label)
    assert match, f"not a convolution label: {label!r}"
    assert match[1] == match[2]
    return int(match[1]), int(match[3])


def _text_positions(fig: Figure) -> dict[str, tuple[float, float]]:
    return {t.get_gid(): t.get_position() for t in fig.findobj(Text) if t.get_gid()}


# ---------------------------------------------------------------- residual blocks against Keras


@pytest.fixture(scope="module")
def resnet50():
    return keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3))


def _bottleneck_arguments(model, block: str) -> dict:
    convs = [model.get_layer(f"{block}_{k}_conv") for k in (1, 2, 3)]
    return {
        "bottleneck_filters": tuple(c.filters for c in convs),
        "bottleneck_input_channels": convs[0].input.shape[-1],
    }


@pytest.mark.parametrize("block", ["conv2_block1", "conv2_block2"])
def test_bottleneck_labels_match_keras_resnet50(resnet50, block):
    fig = draw_residual_blocks(**_bottleneck_arguments(resnet50, block))
    labels, where = diagram_labels(fig), _text_positions(fig)
    parts = ["bottleneck.reduce", "bottleneck.conv3x3", "bottleneck.expand"]
    for part, k in zip(parts, (1, 2, 3)):
        conv = resnet50.get_layer(f"{block}_{k}_conv")
        assert _conv(labels[part]) == (conv.kernel_size[0], conv.filters), part
    heights = [where[part][1] for part in parts]
    assert heights == sorted(heights, reverse=True), "the diagram draws the convs top to bottom in Keras' order"
    input_channels = resnet50.get_layer(f"{block}_1_conv").input.shape[-1]
    assert labels["bottleneck.input"] == f"input, {input_channels} channels"
    keras_names = {layer.name for layer in resnet50.layers}
    if f"{block}_0_conv" in keras_names:
        projection = resnet50.get_layer(f"{block}_0_conv")
        assert _conv(labels["bottleneck.projection"]) == (projection.kernel_size[0], projection.filters)
        assert where["bottleneck.projection"][0] > where["bottleneck.expand"][0], "the projection sits on the shortcut"
        assert "projection" in labels["bottleneck.shortcut"]
    else:
        assert "bottleneck.projection" not in labels
        assert "identity" in labels["bottleneck.shortcut"]


def test_residual_defaults_are_resnet50s_first_block_and_resnet34s_first_stage(resnet50):
    defaults = diagram_labels(draw_residual_blocks())
    assert defaults == diagram_labels(draw_residual_blocks(**_bottleneck_arguments(resnet50, "conv2_block1")))
    assert _conv(defaults["bottleneck.projection"]) == (1, resnet50.get_layer("conv2_block1_0_conv").filters)
    # ResNet-34's first stage: 64 channels in, two 3x3 convs of 64, identity shortcut.
    inputs = keras.Input((8, 8, 64))
    block = keras.Model(inputs, basic_residual_block(inputs, 64, name="basic"))
    for part, k in (("basic.conv1", 1), ("basic.conv2", 2)):
        conv = block.get_layer(f"basic_{k}_conv")
        assert _conv(defaults[part]) == (conv.kernel_size[0], conv.filters)
    assert "basic_0_conv" not in {layer.name for layer in block.layers}
    assert "identity" in defaults["basic.shortcut"]


def test_a_projection_that_cannot_be_added_is_refused():
    with pytest.raises(ValueError, match="projection shortcut must output as many channels"):
        draw_residual_blocks(projection_filters=128)


# ---------------------------------------------------------------- MBConv against Keras


@pytest.fixture(scope="module")
def efficientnet_b0():
    return keras.applications.EfficientNetB0(weights=None, input_shape=(64, 64, 3))


def _mbconv_arguments(model, block: str) -> dict:
    expand = model.get_layer(f"{block}_expand_conv")
    depthwise = model.get_layer(f"{block}_dwconv")
    input_channels = expand.input.shape[-1]
    return {
        "input_channels": input_channels,
        "expand_ratio": expand.filters // input_channels,
        "kernel_size": depthwise.kernel_size[0],
        "strides": depthwise.strides[0],
        "output_channels": model.get_layer(f"{block}_project_conv").filters,
    }


def _activation_word(layer) -> str:
    name = layer.activation.__name__
    return {"silu": "swish", "swish": "swish", "sigmoid": "sigmoid"}[name]


@pytest.mark.parametrize("block", ["block2a", "block2b"])
def test_mbconv_labels_match_keras_efficientnet_b0(efficientnet_b0, block):
    model = efficientnet_b0
    fig = draw_mbconv_block(**_mbconv_arguments(model, block))
    labels = diagram_labels(fig)
    expand, depthwise = model.get_layer(f"{block}_expand_conv"), model.get_layer(f"{block}_dwconv")
    assert _conv(labels["mbconv.expand"]) == (expand.kernel_size[0], expand.filters)
    k, stride = depthwise.kernel_size[0], depthwise.strides[0]
    assert labels["mbconv.depthwise"] == f"{k}×{k} depthwise conv, stride {stride}"
    for part in ("se_reduce", "se_expand"):
        conv = model.get_layer(f"{block}_{part}")
        assert _conv(labels[f"mbconv.{part}"]) == (conv.kernel_size[0], conv.filters), part
        assert labels[f"mbconv.{part}"].endswith(_activation_word(conv)), part
    project = model.get_layer(f"{block}_project_conv")
    assert _conv(labels["mbconv.project"]) == (project.kernel_size[0], project.filters)
    assert project.activation.__name__ == "linear" and "no activation" in labels["mbconv.project_bn"]
    keras_adds = f"{block}_add" in {layer.name for layer in model.layers}
    drawn_adds = bool(fig.findobj(lambda artist: artist.get_gid() == "mbconv.skip"))
    assert drawn_adds == keras_adds
    assert ("mbconv.skip_note" in labels) == (not keras_adds)


def test_mbconv_skips_only_with_stride_1_and_equal_channels():
    strided = draw_mbconv_block(input_channels=24, output_channels=24, strides=2)
    assert not strided.findobj(lambda artist: artist.get_gid() == "mbconv.skip")
    assert diagram_labels(strided)["mbconv.skip_note"] == "no skip: stride 2"


def test_mbconv_defaults_are_block2a_and_say_why_there_is_no_skip(efficientnet_b0):
    labels = diagram_labels(draw_mbconv_block())
    assert labels == diagram_labels(draw_mbconv_block(**_mbconv_arguments(efficientnet_b0, "block2a")))
    assert labels["mbconv.skip_note"].startswith("no skip: stride 2")


# ---------------------------------------------------------------- Grad-CAM


def test_gradcam_flow_names_its_symbols_in_the_order_of_the_computation():
    fig = draw_gradcam_flow()
    labels, where = diagram_labels(fig), _text_positions(fig)
    assert labels["gradcam.feature_maps"] == "$A^k$"
    assert "y^c" in labels["gradcam.score"]
    assert r"\partial y^c" in labels["gradcam.gradients"] and r"\partial A^k" in labels["gradcam.gradients"]
    assert r"\alpha_k^c" in labels["gradcam.weights"] and r"\alpha_k^c" in labels["gradcam.alpha_formula"]
    assert r"\sum_k \alpha_k^c A^k" in labels["gradcam.weighted_sum"]
    assert "ReLU" in labels["gradcam.relu"]
    last_row = ["gradcam.weighted_sum", "gradcam.relu", "gradcam.upsample", "gradcam.heatmap"]
    assert [where[part][0] for part in last_row] == sorted(where[part][0] for part in last_row)
    backward = ["gradcam.gradients", "gradcam.average", "gradcam.weights"]
    assert [where[part][0] for part in backward] == sorted((where[part][0] for part in backward), reverse=True)


# ---------------------------------------------------------------- the split picture against its tables


@pytest.fixture(scope="module")
def split_tables():
    rows = []
    for label in ("COVID-19", "Normal", "Pneumonia"):
        for p in range(12):
            for image in range(1 + (p * 7 + len(label)) % 4):
                rows.append({"path": f"{label}{p}_{image}.png", "label": label, "patient_id": f"{label}-{p}"})
    by_patient = split_by_patient(pd.DataFrame(rows), seed=0)
    by_image = by_patient.copy()
    rest, test = train_test_split(by_image.index, test_size=0.2, random_state=0, stratify=by_image["label"])
    train, val = train_test_split(rest, test_size=0.25, random_state=0, stratify=by_image.loc[rest, "label"])
    for name, rows_of_split in (("train", train), ("val", val), ("test", test)):
        by_image.loc[rows_of_split, "split"] = name
    return by_patient, by_image


def _drawn(fig: Figure, panel: str):
    """For one panel: the bands each drawn patient's image squares sit in, and the patients framed in red."""
    (ax,) = [a for a in fig.axes if a.get_gid() == panel]
    bands = {p.get_gid().split(":", 1)[1]: p for p in ax.patches if (p.get_gid() or "").startswith("split:")}
    bands_of = defaultdict(set)
    red = set()
    for patch in ax.patches:
        kind, _, patient = (patch.get_gid() or "").partition(":")
        if kind == "image":
            y = patch.get_y() + patch.get_height() / 2
            bands_of[patient] |= {n for n, b in bands.items() if b.get_y() <= y <= b.get_y() + b.get_height()}
        elif kind == "patient" and to_hex(patch.get_edgecolor()) == "#d62728":
            red.add(patient)
    return bands_of, red


def _shared(table) -> set:
    counts = table.groupby("patient_id")["split"].nunique()
    return set(counts[counts > 1].index)


def test_split_titles_count_the_patients_on_both_sides(split_tables):
    by_patient, by_image = split_tables
    labels = diagram_labels(draw_patient_split(by_patient, contrast=by_image))
    for panel, table in (("panel:table", by_patient), ("panel:contrast", by_image)):
        counted, patients = map(int, BOTH_SIDES.search(labels[f"{panel}.title"]).groups())
        assert (counted, patients) == (len(_shared(table)), table["patient_id"].nunique())
    assert BOTH_SIDES.search(labels["panel:table.title"])[1] == "0"
    assert len(_shared(by_image)) > 0, "the image-wise split of this table must leak, or the test shows nothing"


def test_each_drawn_patient_sits_in_its_own_split_and_leaks_show_in_red(split_tables):
    by_patient, by_image = split_tables
    fig = draw_patient_split(by_patient, contrast=by_image, max_patients=24)
    bands_of, red = _drawn(fig, "panel:table")
    assert len(bands_of) == 24 and not red
    home = by_patient.groupby("patient_id")["split"].first()
    for patient, bands in bands_of.items():
        assert bands == {home[patient]}, patient
    assert {home[p] for p in bands_of} == {"train", "val", "test"}
    contrast_bands, contrast_red = _drawn(fig, "panel:contrast")
    assert set(contrast_bands) == set(bands_of), "both panels draw the same patients"
    splits_of = by_image.groupby("patient_id")["split"].agg(set)
    for patient, bands in contrast_bands.items():
        assert bands == splits_of[patient], patient
    assert contrast_red == _shared(by_image) & set(bands_of)
    assert contrast_red, "some drawn patient must leak in the image-wise split"


def test_the_number_of_patients_drawn_is_capped_and_the_choice_repeats(split_tables):
    by_patient, _ = split_tables
    first = set(_drawn(draw_patient_split(by_patient, max_patients=6, seed=3), "panel:table")[0])
    again = set(_drawn(draw_patient_split(by_patient, max_patients=6, seed=3), "panel:table")[0])
    assert len(first) == 6 and first == again


def test_a_missing_column_is_named(split_tables):
    by_patient, _ = split_tables
    with pytest.raises(ValueError, match=r"no column\(s\) \['fold'\]"):
        draw_patient_split(by_patient, split_column="fold")


# ---------------------------------------------------------------- every diagram renders, legibly


def _render(fig: Figure):
    """PNG bytes of the figure; the pairs of texts or of filled boxes that overlap; the texts
    that leave the figure or straddle a box's edge."""
    FigureCanvasAgg(fig)
    png = io.BytesIO()
    fig.savefig(png, format="png")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [(t.get_text(), t.get_window_extent(renderer)) for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    boxes = [p.get_window_extent(renderer) for p in fig.findobj(FancyBboxPatch) if p.get_facecolor()[3] > 0]
    overlapping = [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(texts, 2) if box_a.overlaps(box_b)]
    overlapping += [("box", "box") for box_a, box_b in itertools.combinations(boxes, 2) if box_a.overlaps(box_b)]
    outside = [text for text, box in texts if box.x0 < 0 or box.y0 < 0 or box.x1 > fig.bbox.x1 or box.y1 > fig.bbox.y1]
    outside += [
        text for text, box in texts for frame in boxes
        if box.overlaps(frame) and Bbox.intersection(box, frame).bounds != box.bounds
    ]
    return png.getvalue(), overlapping, outside


def test_the_legibility_check_sees_overlapping_and_clipped_texts():
    fig = Figure(figsize=(2, 1))
    fig.text(0.05, 0.5, "one label")
    fig.text(0.07, 0.5, "another label")
    fig.text(0.8, 0.1, "cut off")
    fig.text(0.05, 0.8, "half boxed")
    for x in (0.0, 0.4):  # two boxes that overlap, the first under half of "half boxed"
        fig.add_artist(FancyBboxPatch((x, 0.75), 0.5, 0.2, "square,pad=0", transform=fig.transFigure, facecolor="white"))
    _, overlapping, outside = _render(fig)
    assert overlapping == [("one label", "another label"), ("box", "box")]
    assert outside == ["cut off", "half boxed"]


DIAGRAMS = {
    "residual blocks": lambda tables: draw_residual_blocks(),
    "residual blocks, identity shortcuts": lambda tables: draw_residual_blocks(bottleneck_input_channels=256),
    "residual blocks, basic projection": lambda tables: draw_residual_blocks(basic_input_channels=32, basic_filters=(128, 128)),
    "MBConv block2a": lambda tables: draw_mbconv_block(),
    "MBConv with skip": lambda tables: draw_mbconv_block(input_channels=24, strides=1, output_channels=24),
    "Grad-CAM flow": lambda tables: draw_gradcam_flow(),
    "patient split": lambda tables: draw_patient_split(tables[0], contrast=tables[1]),
}


@pytest.mark.parametrize("name", DIAGRAMS)
def test_every_diagram_renders_with_no_overlapping_text(split_tables, name):
    fig = DIAGRAMS[name](split_tables)
    png, overlapping, outside = _render(fig)
    assert png.startswith(b"\x89PNG")
    assert not overlapping, f"{name}: texts overlap: {overlapping}"
    assert not outside, f"{name}: texts leave the figure: {outside}"
    assert len(figure_texts(fig)) >= 8
    assert fig.get_figwidth() <= 9.0, "wider than a notebook column"

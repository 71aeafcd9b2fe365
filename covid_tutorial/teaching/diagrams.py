"""Diagrams drawn by code: residual blocks, MBConv, the Grad-CAM data flow, a patient-wise split.

:func:`draw_residual_blocks` (notebook 02), :func:`draw_mbconv_block` (notebook 05),
:func:`draw_gradcam_flow` (notebook 06) and :func:`draw_patient_split` (notebook 03)
return ``matplotlib.figure.Figure`` objects (no pyplot state), like :mod:`figures`:
a notebook shows them, ``fig.savefig`` writes them. The block diagrams take their
channel counts as arguments, with ResNet's and EfficientNet-B0's as defaults; the split
picture is drawn from a real assignment table. :func:`figure_texts` and
:func:`diagram_labels` read a diagram's text back (for tests).

Coordinates are inches: each diagram draws on one axes that fills its figure, so
circles stay round and sizes read as they print.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Patch, Rectangle
from matplotlib.text import Text

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

__all__ = [
    "diagram_labels",
    "draw_gradcam_flow",
    "draw_mbconv_block",
    "draw_patient_split",
    "draw_residual_blocks",
    "figure_texts",
]

# One palette for every diagram: what a box does decides its colour.
_FILL = {
    "conv": "#cfe2f3",  # convolutions
    "norm": "#fff2cc",  # batch normalisation and activations
    "pool": "#d9ead3",  # pooling, averaging, weighting
    "tensor": "#eeeeee",  # inputs, outputs, data
    "backward": "#f4cccc",  # gradients (Grad-CAM)
}
_EDGE = "#444444"
_BACKWARD = "#c0392b"
_NOTE = "#666666"
_FONT = 9
# Class colours for the split picture (Okabe-Ito, readable by colour-blind readers).
_CLASS_COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
_LEAK = "#d62728"


# ---------------------------------------------------------------- reading a diagram back


def figure_texts(fig: Figure) -> list[str]:
    """Every visible, non-empty text of a figure (labels, titles, legend entries)."""
    return [t.get_text() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def diagram_labels(fig: Figure) -> dict[str, str]:
    """The labelled parts of a diagram: ``{part: text}``, e.g. ``"bottleneck.reduce": "1×1 conv, 64"``."""
    return {t.get_gid(): t.get_text() for t in fig.findobj(Text) if t.get_gid()}


# ---------------------------------------------------------------- drawing primitives


@dataclass(frozen=True)
class _Box:
    x: float
    y: float
    w: float
    h: float

    @property
    def top(self):
        return (self.x, self.y + self.h / 2)

    @property
    def bottom(self):
        return (self.x, self.y - self.h / 2)

    @property
    def left(self):
        return (self.x - self.w / 2, self.y)

    @property
    def right(self):
        return (self.x + self.w / 2, self.y)


def _canvas(width: float, height: float) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    return fig, ax


def _box(ax, x, y, text, kind, *, w=1.8, h=0.34, gid=None, dashed=False, fontsize=_FONT) -> _Box:
    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0,rounding_size=0.06",
            facecolor=_FILL[kind], edgecolor=_EDGE, linewidth=1.0, linestyle="--" if dashed else "-",
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, gid=gid)
    return _Box(x, y, w, h)


def _node(ax, x, y, symbol="+", r=0.13, gid=None) -> _Box:
    """A circled + (addition) or × (multiplication), drawn with lines so it sits centred."""
    ax.add_patch(Circle((x, y), r, facecolor="white", edgecolor=_EDGE, linewidth=1.2, gid=gid))
    arm = 0.6 * r
    angles = (0, 90) if symbol == "+" else (45, 135)
    for angle in angles:
        dx, dy = arm * np.cos(np.radians(angle)), arm * np.sin(np.radians(angle))
        ax.add_line(Line2D([x - dx, x + dx], [y - dy, y + dy], color=_EDGE, linewidth=1.2))
    return _Box(x, y, 2 * r, 2 * r)


def _arrow(ax, *points, color=_EDGE, dashed=False, lw=1.2):
    """A polyline through ``points`` ending in an arrowhead (solid even when the line is dashed)."""
    points = np.asarray(points, dtype=float)
    ax.add_line(Line2D(points[:, 0], points[:, 1], color=color, linewidth=lw, linestyle=(0, (4, 2.5)) if dashed else "-"))
    end, before = points[-1], points[-2]
    direction = (end - before) / np.linalg.norm(end - before)
    ax.add_patch(
        FancyArrowPatch(
            tuple(end - 0.02 * direction), tuple(end), arrowstyle="-|>", mutation_scale=11,
            color=color, linewidth=lw, shrinkA=0, shrinkB=0,
        )
    )


def _note(ax, x, y, text, *, ha="left", color=_NOTE, fontsize=8, gid=None, style="italic"):
    ax.text(x, y, text, ha=ha, va="center", fontsize=fontsize, color=color, style=style, gid=gid)


def _legend(fig, entries, *, y=0.01, ncol=None):
    handles = []
    for label, kind in entries:
        if kind == "dashed":
            handles.append(Patch(facecolor="white", edgecolor=_EDGE, linestyle="--", label=label))
        elif kind == "backward":
            handles.append(Line2D([], [], color=_BACKWARD, linestyle=(0, (4, 2.5)), label=label))
        elif kind == "forward":
            handles.append(Line2D([], [], color=_EDGE, label=label))
        else:
            handles.append(Patch(facecolor=_FILL[kind], edgecolor=_EDGE, label=label))
    fig.legend(
        handles=handles, loc="lower center", bbox_to_anchor=(0.5, y), ncol=ncol or len(handles),
        fontsize=8, frameon=False, handlelength=1.6, columnspacing=1.4,
    )


def _kernel(k: int) -> str:
    return f"{k}×{k}"


# ---------------------------------------------------------------- residual blocks (notebook 02)


def _column(ax, x, top, step, rows, *, w=1.8):
    """Boxes (or addition nodes) stacked downwards from ``top``, joined by arrows."""
    drawn = []
    for k, row in enumerate(rows):
        y = top - k * step
        if row[0] == "add":
            drawn.append(_node(ax, x, y, gid=row[1]))
        else:
            text, kind, gid = row
            drawn.append(_box(ax, x, y, text, kind, w=w, gid=gid))
    for upper, lower in pairwise(drawn):
        _arrow(ax, upper.bottom, lower.top)
    return drawn


def _shortcut(ax, start: _Box, first: _Box, add: _Box, x_side: float, step: float, *, projection=None, prefix=""):
    """The shortcut from between ``start`` and ``first`` round to the addition node ``add``.

    ``projection``: ``(filters, (channels_in, channels_out))`` draws a dashed 1×1 conv and BN
    on the way (a projection shortcut); None draws the identity shortcut.
    """
    branch_y = (start.bottom[1] + first.top[1]) / 2
    ax.add_patch(Circle((start.x, branch_y), 0.035, color=_EDGE))
    if projection is None:
        _arrow(ax, (start.x, branch_y), (x_side, branch_y), (x_side, add.y), add.right)
        _note(ax, x_side + 0.1, (branch_y + add.y) / 2, "identity\nshortcut", gid=f"{prefix}.shortcut")
        return
    filters, (channels_in, channels_out) = projection
    middle = (branch_y + add.y) / 2
    conv = _box(ax, x_side, middle + 0.5 * step, f"1×1 conv, {filters}", "conv", w=1.15, dashed=True, gid=f"{prefix}.projection")
    norm = _box(ax, x_side, middle - 0.5 * step, "BN", "norm", w=1.15, dashed=True)
    ax.add_line(Line2D([start.x, x_side], [branch_y, branch_y], color=_EDGE, linewidth=1.2))
    _arrow(ax, (x_side, branch_y), conv.top)
    _arrow(ax, conv.bottom, norm.top)
    _arrow(ax, norm.bottom, (x_side, add.y), add.right)
    _note(ax, x_side + 0.1, (branch_y + conv.top[1]) / 2, f"projection\nshortcut:\n{channels_in} → {channels_out}\nchannels",
          gid=f"{prefix}.shortcut")


def draw_residual_blocks(
    *,
    basic_filters: tuple[int, int] = (64, 64),
    basic_input_channels: int = 64,
    bottleneck_filters: tuple[int, int, int] = (64, 64, 256),
    bottleneck_input_channels: int = 64,
    projection_filters: int = 256,
) -> Figure:
    """The basic residual block (left) and the bottleneck block (right), side by side.

    Defaults: the first block of ResNet-34's first stage (two 3×3 convs, 64) and of
    ResNet-50's (``conv2_block1``: 1×1 64, 3×3 64, 1×1 256, and a 1×1 256 projection
    because the block turns 64 channels into 256). A shortcut is a projection (dashed)
    wherever a block's input and output channels differ, else the identity.
    """
    if bottleneck_input_channels != bottleneck_filters[-1] and projection_filters != bottleneck_filters[-1]:
        raise ValueError(
            f"the projection shortcut must output as many channels as the block ({bottleneck_filters[-1]}) "
            f"to be added to it; got projection_filters={projection_filters}."
        )
    fig, ax = _canvas(9.0, 6.3)
    top, step = 5.45, 0.52

    left_x = 1.65
    basic = _column(ax, left_x, top, step, [
        (f"input, {basic_input_channels} channels", "tensor", "basic.input"),
        (f"{_kernel(3)} conv, {basic_filters[0]}", "conv", "basic.conv1"),
        ("BN, ReLU", "norm", None),
        (f"{_kernel(3)} conv, {basic_filters[1]}", "conv", "basic.conv2"),
        ("BN", "norm", None),
        ("add", "basic.add"),
        ("ReLU", "norm", None),
        (f"output, {basic_filters[1]} channels", "tensor", "basic.output"),
    ])
    basic_projection = None
    if basic_input_channels != basic_filters[1]:
        basic_projection = (basic_filters[1], (basic_input_channels, basic_filters[1]))
    basic_side = left_x + (1.35 if basic_projection is None else 1.6)
    _shortcut(ax, basic[0], basic[1], basic[5], basic_side, step, projection=basic_projection, prefix="basic")
    ax.text(left_x + 0.5, top + 0.5, "Basic block (ResNet-18/34)", ha="center", fontsize=11, weight="bold")

    right_x = 5.55
    reduce, middle, expand = bottleneck_filters
    bottleneck = _column(ax, right_x, top, step, [
        (f"input, {bottleneck_input_channels} channels", "tensor", "bottleneck.input"),
        (f"{_kernel(1)} conv, {reduce}", "conv", "bottleneck.reduce"),
        ("BN, ReLU", "norm", None),
        (f"{_kernel(3)} conv, {middle}", "conv", "bottleneck.conv3x3"),
        ("BN, ReLU", "norm", None),
        (f"{_kernel(1)} conv, {expand}", "conv", "bottleneck.expand"),
        ("BN", "norm", None),
        ("add", "bottleneck.add"),
        ("ReLU", "norm", None),
        (f"output, {expand} channels", "tensor", "bottleneck.output"),
    ])
    projection = None
    if bottleneck_input_channels != expand:
        projection = (projection_filters, (bottleneck_input_channels, expand))
    _shortcut(ax, bottleneck[0], bottleneck[1], bottleneck[7], right_x + 2.0, step, projection=projection, prefix="bottleneck")
    _note(ax, right_x - 1.0, (bottleneck[1].y + bottleneck[2].y) / 2, "reduce", ha="right")
    _note(ax, right_x - 1.0, (bottleneck[5].y + bottleneck[6].y) / 2, "expand", ha="right")
    ax.text(right_x + 0.9, top + 0.5, "Bottleneck block (ResNet-50/101/152)", ha="center", fontsize=11, weight="bold")

    entries = [("convolution", "conv"), ("batch norm, activation", "norm"), ("tensor", "tensor")]
    if projection or basic_projection:
        entries.append(("projection (1×1 conv + BN, when shapes change)", "dashed"))
    _legend(fig, entries)
    return fig


# ---------------------------------------------------------------- MBConv (notebook 05)


def draw_mbconv_block(
    *,
    input_channels: int = 16,
    expand_ratio: int = 6,
    kernel_size: int = 3,
    strides: int = 2,
    se_ratio: float = 0.25,
    output_channels: int = 24,
) -> Figure:
    """EfficientNet's MBConv block with squeeze-and-excitation, as Keras builds it.

    Defaults: EfficientNet-B0's ``block2a`` (16 → 96 → 24 channels, 3×3 depthwise with
    stride 2, SE 96 → 4 → 96). The SE reduction has ``max(1, int(input_channels * se_ratio))``
    channels, as in Keras. The skip connection (an addition) is drawn only when
    ``strides == 1`` and ``input_channels == output_channels``; otherwise a note says why not.
    """
    expanded = input_channels * expand_ratio
    squeezed = max(1, int(input_channels * se_ratio))
    skip = strides == 1 and input_channels == output_channels
    fig, ax = _canvas(9.0, 7.4 if skip else 6.9)
    step, main_x, se_x, top = 0.52, 3.1, 6.6, (6.75 if skip else 6.25)
    w = 2.3

    def y(row):
        return top - row * step

    main = [
        _box(ax, main_x, y(0), f"input, {input_channels} channels", "tensor", w=w, gid="mbconv.input"),
        _box(ax, main_x, y(1), f"{_kernel(1)} conv, {expanded}  (expand ×{expand_ratio})", "conv", w=w, gid="mbconv.expand"),
        _box(ax, main_x, y(2), "BN, swish", "norm", w=w),
        _box(ax, main_x, y(3), f"{_kernel(kernel_size)} depthwise conv, stride {strides}", "conv", w=w, gid="mbconv.depthwise"),
        _box(ax, main_x, y(4), "BN, swish", "norm", w=w),
    ]
    for upper, lower in pairwise(main):
        _arrow(ax, upper.bottom, lower.top)

    # Squeeze-and-excitation: a side branch that weights each of the expanded channels.
    branch_y = y(4.6)
    ax.add_patch(Circle((main_x, branch_y), 0.035, color=_EDGE))
    se = [
        _box(ax, se_x, y(5.4), "global average pool", "pool", w=w, gid="mbconv.se_squeeze"),
        _box(ax, se_x, y(6.4), f"{_kernel(1)} conv, {squeezed}, swish", "conv", w=w, gid="mbconv.se_reduce"),
        _box(ax, se_x, y(7.4), f"{_kernel(1)} conv, {expanded}, sigmoid", "conv", w=w, gid="mbconv.se_expand"),
    ]
    ax.add_line(Line2D([main_x, se_x], [branch_y, branch_y], color=_EDGE, linewidth=1.2))
    _arrow(ax, (se_x, branch_y), se[0].top)
    for upper, lower in pairwise(se):
        _arrow(ax, upper.bottom, lower.top)
    frame_left, frame_right = se_x - w / 2 - 0.25, se_x + w / 2 + 0.25
    frame_bottom, frame_top = se[2].bottom[1] - 0.15, se[0].top[1] + 0.3
    ax.add_patch(FancyBboxPatch((frame_left, frame_bottom), frame_right - frame_left, frame_top - frame_bottom,
                                boxstyle="round,pad=0,rounding_size=0.1", facecolor="none", edgecolor=_NOTE,
                                linestyle=":", linewidth=1.0))
    ax.text(se_x, frame_bottom - 0.17, "squeeze-and-excitation", ha="center", va="center", fontsize=9, color=_NOTE,
            weight="bold")
    _note(ax, se_x + 0.08, (se[0].bottom[1] + se[1].top[1]) / 2, f"1×1×{expanded}", fontsize=7.5)
    _note(ax, se_x + 0.08, (se[1].bottom[1] + se[2].top[1]) / 2, f"1×1×{squeezed}", fontsize=7.5)

    multiply = _node(ax, main_x, se[2].y, symbol="×", gid="mbconv.excite")
    _arrow(ax, main[-1].bottom, multiply.top)
    _arrow(ax, se[2].left, multiply.right)
    _note(ax, (multiply.right[0] + se[2].left[0]) / 2, se[2].y + 0.13, "one weight per channel", ha="center", fontsize=7.5)

    project = _box(ax, main_x, y(8.5), f"{_kernel(1)} conv, {output_channels}  (project)", "conv", w=w, gid="mbconv.project")
    project_norm = _box(ax, main_x, y(9.5), "BN  (linear: no activation)", "norm", w=w, gid="mbconv.project_bn")
    _arrow(ax, multiply.bottom, project.top)
    _arrow(ax, project.bottom, project_norm.top)
    last = project_norm
    if skip:
        add = _node(ax, main_x, y(10.5), gid="mbconv.skip")
        _arrow(ax, project_norm.bottom, add.top)
        side = main_x - w / 2 - 0.45
        input_branch = (main[0].bottom[1] + main[1].top[1]) / 2
        ax.add_patch(Circle((main_x, input_branch), 0.035, color=_EDGE))
        _arrow(ax, (main_x, input_branch), (side, input_branch), (side, add.y), add.left)
        _note(ax, side - 0.08, (input_branch + add.y) / 2, "skip\n(identity)", ha="right")
        last = add
    output = _box(ax, main_x, last.y - step, f"output, {output_channels} channels", "tensor", w=w, gid="mbconv.output")
    _arrow(ax, last.bottom, output.top)
    if not skip:
        reasons = []
        if strides != 1:
            reasons.append(f"stride {strides}")
        if input_channels != output_channels:
            reasons.append(f"{input_channels} → {output_channels} channels")
        _note(ax, main_x + w / 2 + 0.2, output.y, f"no skip: {', '.join(reasons)}", color=_LEAK, fontsize=8.5,
              gid="mbconv.skip_note")

    # Tensor shapes beside the main path, where they change.
    size = "H/2×W/2" if strides == 2 else ("H×W" if strides == 1 else f"H/{strides}×W/{strides}")
    shape_x = main_x + 0.08
    for upper, lower, shape in [
        (main[0], main[1], f"H×W×{input_channels}"),
        (main[1], main[2], f"H×W×{expanded}"),
        (main[3], main[4], f"{size}×{expanded}"),
        (project, project_norm, f"{size}×{output_channels}"),
    ]:
        _note(ax, shape_x, (upper.bottom[1] + lower.top[1]) / 2, shape, fontsize=7.5)

    block2a = (input_channels, expand_ratio, kernel_size, strides, output_channels) == (16, 6, 3, 2, 24)
    title = "MBConv block with squeeze-and-excitation" + (" (EfficientNet-B0, block2a)" if block2a else "")
    ax.text(4.5, top + 0.5, title, ha="center", fontsize=11, weight="bold")
    _legend(fig, [("convolution", "conv"), ("batch norm, activation", "norm"), ("pooling", "pool"), ("tensor", "tensor")])
    return fig


# ---------------------------------------------------------------- Grad-CAM (notebook 06)


def _toy_chest(size: int = 64) -> np.ndarray:
    """A grey picture with two lung fields: a stand-in for an X-ray in a diagram."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = np.full((size, size), 0.75)
    for centre in (0.3, 0.7):
        lung = ((xx - centre) / 0.17) ** 2 + ((yy - 0.5) / 0.33) ** 2 < 1
        image[lung] = 0.25 + 0.1 * yy[lung]
    return image


def _toy_heatmap(size: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] / size
    return np.exp(-(((xx - 0.68) / 0.14) ** 2 + ((yy - 0.58) / 0.18) ** 2))


def _picture(ax, x, y, rgb, side=1.0):
    ax.imshow(rgb, extent=(x - side / 2, x + side / 2, y - side / 2, y + side / 2), zorder=2, interpolation="bilinear")
    ax.add_patch(Rectangle((x - side / 2, y - side / 2), side, side, facecolor="none", edgecolor=_EDGE, zorder=3))
    return _Box(x, y, side, side)


def draw_gradcam_flow() -> Figure:
    """The data flow of Grad-CAM (Selvaraju et al., 2017).

    Forward (top row): the image through the convolutional layers to the feature maps
    :math:`A^k` of the chosen layer, then through the rest of the network to the class
    score :math:`y^c`. Backward (middle row, right to left): the gradients of
    :math:`y^c` with respect to :math:`A^k`, averaged over positions into one weight
    :math:`\\alpha_k^c` per map. Bottom row: the weighted sum of the maps, ReLU,
    upsampling to the image's size, the heatmap over the image.
    """
    fig, ax = _canvas(9.0, 5.7)
    columns = [0.85, 2.65, 4.5, 6.35, 8.1]
    row_forward, row_backward, row_map = 4.65, 2.95, 1.2
    w, h = 1.5, 0.62

    gray = np.repeat(_toy_chest()[..., None], 3, axis=2)
    image = _picture(ax, columns[0], row_forward, gray)
    _note(ax, columns[0], image.bottom[1] - 0.15, "image", ha="center", color="black", style="normal", fontsize=_FONT)
    convs = _box(ax, columns[1], row_forward, "convolutional\nlayers", "conv", w=w, h=h)
    # The feature maps as a stack of planes.
    stack_x, plane = columns[2], 0.5
    for k in range(4):
        offset = 0.07 * k
        ax.add_patch(Rectangle((stack_x - plane / 2 - 0.1 + offset, row_forward - plane / 2 + 0.1 - offset), plane, plane,
                               facecolor=_FILL["conv"], edgecolor=_EDGE, linewidth=0.8))
    ax.text(stack_x + 0.01, row_forward - 0.01, "$A^k$", ha="center", va="center", fontsize=12, gid="gradcam.feature_maps")
    features = _Box(stack_x, row_forward, plane + 0.21, plane + 0.21)
    _note(ax, stack_x, row_forward + 0.52, "feature maps of\nthe chosen layer", ha="center", fontsize=8)
    rest = _box(ax, columns[3], row_forward, "rest of the\nnetwork", "conv", w=w, h=h)
    score = _box(ax, columns[4], row_forward, "class score $y^c$", "tensor", w=1.35, h=h, gid="gradcam.score")
    _arrow(ax, image.right, convs.left)
    _arrow(ax, convs.right, features.left)
    _arrow(ax, features.right, rest.left)
    _arrow(ax, rest.right, score.left)

    gradients = _box(ax, columns[3], row_backward, r"gradients $\dfrac{\partial y^c}{\partial A^k_{ij}}$", "backward",
                     w=w + 0.15, h=h + 0.12, gid="gradcam.gradients")
    average = _box(ax, columns[2], row_backward, "global average\nover positions $i, j$", "pool", w=w + 0.15, h=h,
                   gid="gradcam.average")
    weights = _box(ax, columns[1], row_backward, r"weights $\alpha_k^c$", "pool", w=w, h=h, gid="gradcam.weights")
    _arrow(ax, score.bottom, (score.x, row_backward), gradients.right, color=_BACKWARD, dashed=True)
    _note(ax, score.x + 0.08, (score.bottom[1] + row_backward) / 2, "backprop", color=_BACKWARD)
    _arrow(ax, gradients.left, average.right, color=_BACKWARD, dashed=True)
    _arrow(ax, average.left, weights.right, color=_BACKWARD, dashed=True)
    _note(ax, columns[2], row_backward - h / 2 - 0.42,
          r"$\alpha_k^c = \dfrac{1}{Z}\sum_i \sum_j \dfrac{\partial y^c}{\partial A^k_{ij}}$", ha="center",
          color="black", style="normal", fontsize=10, gid="gradcam.alpha_formula")
    _note(ax, columns[2] + 0.72, row_backward - h / 2 - 0.42, "Z: number of\npositions", fontsize=7.5)

    weighted = _box(ax, columns[1], row_map, r"weighted sum $\sum_k \alpha_k^c A^k$", "pool", w=w + 0.2, h=h,
                    gid="gradcam.weighted_sum")
    relu = _box(ax, columns[2], row_map, "ReLU\n(keep positive evidence)", "norm", w=w + 0.15, h=h, gid="gradcam.relu")
    upsample = _box(ax, columns[3], row_map, "upsample to\nthe image's size", "pool", w=w, h=h, gid="gradcam.upsample")
    heat = _toy_heatmap()
    weight = 0.75 * heat[..., None]
    overlay = (1 - weight) * gray + weight * colormaps["inferno"](heat)[..., :3]
    heatmap = _picture(ax, columns[4], row_map, overlay)
    _note(ax, columns[4], heatmap.bottom[1] - 0.15, "heatmap over the image", ha="center", color="black", style="normal",
          fontsize=_FONT, gid="gradcam.heatmap")
    _arrow(ax, weights.bottom, weighted.top)
    _arrow(ax, weighted.right, relu.left)
    _arrow(ax, relu.right, upsample.left)
    _arrow(ax, upsample.right, heatmap.left)
    # The feature maps themselves also enter the weighted sum.
    lane_y, lane_x = (row_forward + row_backward) / 2 - 0.05, columns[1] - w / 2 - 0.3
    _arrow(ax, features.bottom, (stack_x, lane_y), (lane_x, lane_y), (lane_x, row_map), weighted.left)

    ax.text(4.5, 5.45, "Grad-CAM: which places in the image raise the score of class $c$", ha="center", fontsize=11,
            weight="bold")
    _legend(fig, [("forward pass", "forward"), ("backward pass (gradients)", "backward")])
    return fig


# ---------------------------------------------------------------- patient-wise split (notebook 03)


def _split_order(values) -> list[str]:
    usual = ["train", "val", "validation", "test"]
    return sorted(set(values), key=lambda v: (usual.index(v) if v in usual else len(usual), v))


def _as_text(table, *columns):
    return table.assign(**{c: table[c].astype(str) for c in columns})


def _patients_in_more_than_one_split(table, split_column, patient_column) -> set[str]:
    counts = table.groupby(patient_column)[split_column].nunique()
    return set(counts[counts > 1].index)


def _chosen_patients(table, split_column, patient_column, label_column, max_patients, seed) -> list[str]:
    """At most ``max_patients`` patients, each split's share in proportion to its patients,
    picked at random (seeded), in drawing order: by split, class, patient id."""
    per_patient = table.groupby(patient_column).agg(
        split=(split_column, lambda s: s.value_counts().index[0]), label=(label_column, "first")
    )
    splits = _split_order(per_patient["split"])
    members = {s: sorted(per_patient.index[per_patient["split"] == s]) for s in splits}
    budget = min(max_patients, len(per_patient))
    shares = {s: budget * len(members[s]) / len(per_patient) for s in splits}
    quota = {s: min(len(members[s]), max(1, int(shares[s]))) for s in splits}
    for s in sorted(splits, key=lambda s: shares[s] - int(shares[s]), reverse=True):
        if sum(quota.values()) >= budget:
            break
        quota[s] += quota[s] < len(members[s])
    rng = np.random.default_rng(seed)
    chosen = [p for s in splits for p in rng.permutation(members[s])[: quota[s]].tolist()]
    return sorted(chosen, key=lambda p: (splits.index(per_patient.at[p, "split"]), per_patient.at[p, "label"], p))


# Sizes of the split picture, in inches.
_SQUARE, _SQUARE_GAP, _FRAME_PAD, _PATIENT_GAP, _LINE = 0.13, 0.03, 0.05, 0.16, 0.62


def _patient_frame_size(images: int) -> tuple[int, float, float]:
    """Columns, width and height of a patient's frame: its image squares in one row, or two from three on."""
    rows = 1 if images <= 2 else 2
    columns = -(-images // rows)
    width = columns * (_SQUARE + _SQUARE_GAP) - _SQUARE_GAP + 2 * _FRAME_PAD
    height = rows * (_SQUARE + _SQUARE_GAP) - _SQUARE_GAP + 2 * _FRAME_PAD
    return columns, width, height


def _split_panel(ax, table, chosen, *, columns, colours, width, title, splits, max_images, panel) -> float:
    """One panel: a band per split, each patient a numbered frame of image squares. Returns its height."""
    split_column, patient_column, label_column = columns
    leaking = _patients_in_more_than_one_split(table, split_column, patient_column)
    number = {patient: k + 1 for k, patient in enumerate(chosen)}
    rows = table[table[patient_column].isin(number)]
    left, right = 1.0, width - 0.15
    bands = []
    for split in splits:
        part = rows[rows[split_column] == split]
        placed, x, lines = [], left, 1
        for patient in sorted(part[patient_column].unique(), key=number.get):
            labels = part.loc[part[patient_column] == patient, label_column].tolist()[:max_images]
            frame_w = _patient_frame_size(len(labels))[1]
            if x + frame_w > right and x > left:
                x, lines = left, lines + 1
            placed.append((patient, labels, x, lines - 1))
            x += frame_w + _PATIENT_GAP
        bands.append((split, placed, lines))
    title_h, band_gap = 0.4, 0.06
    height = title_h + sum(lines * _LINE + 0.1 + band_gap for _, _, lines in bands)
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    ax.set_gid(panel)
    ax.text(0.1, height - 0.2,
            f"{title}: {len(leaking)} of {table[patient_column].nunique()} patients on both sides"
            f"  ({len(leaking & set(chosen))} of the {len(chosen)} drawn)",
            ha="left", va="center", fontsize=10, weight="bold", gid=f"{panel}.title")
    band_top = height - title_h
    for split, placed, lines in bands:
        band_h = lines * _LINE + 0.1
        ax.add_patch(Rectangle((0.05, band_top - band_h), width - 0.1, band_h, facecolor="#f6f6f6", edgecolor="#cccccc",
                               linewidth=0.8, gid=f"split:{split}"))
        ax.text(0.15, band_top - band_h / 2, split, ha="left", va="center", fontsize=10)
        for patient, labels, x, line_no in placed:
            centre_y = band_top - 0.05 - _LINE * line_no - 0.24
            grid_columns, frame_w, frame_h = _patient_frame_size(len(labels))
            leaks = patient in leaking
            ax.add_patch(FancyBboxPatch((x, centre_y - frame_h / 2), frame_w, frame_h,
                                        boxstyle="round,pad=0,rounding_size=0.04", facecolor="white",
                                        edgecolor=_LEAK if leaks else "#999999", linewidth=1.8 if leaks else 0.7,
                                        gid=f"patient:{patient}"))
            for k, label in enumerate(labels):
                row, column = divmod(k, grid_columns)
                square_x = x + _FRAME_PAD + column * (_SQUARE + _SQUARE_GAP)
                square_y = centre_y + frame_h / 2 - _FRAME_PAD - (row + 1) * _SQUARE - row * _SQUARE_GAP
                ax.add_patch(Rectangle((square_x, square_y), _SQUARE, _SQUARE, facecolor=colours[label],
                                       edgecolor="none", gid=f"image:{patient}"))
            ax.text(x + frame_w / 2, centre_y - 0.1 - 0.5 * (_SQUARE + _SQUARE_GAP) * 2, str(number[patient]),
                    ha="center", va="center", fontsize=7, color=_NOTE, gid=f"number:{patient}")
        band_top -= band_h + band_gap
    return height


def draw_patient_split(
    table: pd.DataFrame,
    split_column: str = "split",
    patient_column: str = "patient_id",
    label_column: str = "label",
    *,
    contrast: pd.DataFrame | None = None,
    titles: tuple[str, str] = ("patient-wise split", "image-wise split"),
    max_patients: int = 24,
    max_images_per_patient: int = 8,
    seed: int = 0,
) -> Figure:
    """Which split each patient's images went to, drawn from a real assignment table.

    ``table`` has one row per image (e.g. the output of ``splits.split_by_patient``). Each
    patient is a numbered frame of squares, one per image (at most
    ``max_images_per_patient``), coloured by class, in the band of the split its images
    went to. At most ``max_patients`` patients are drawn, each split's share in proportion
    to its patients, picked at random with ``seed``. ``contrast``: a second assignment of
    the same images (e.g. image-wise), drawn below for the same patients, with the same
    numbers. In both panels a patient whose images sit in more than one split is outlined
    in red, and each panel's title counts such patients over its whole table.
    """
    columns = (split_column, patient_column, label_column)
    frames = []
    for name, frame, title in (("table", table, titles[0]), ("contrast", contrast, titles[1])):
        if frame is None:
            continue
        missing = [c for c in columns if c not in frame]
        if missing:
            raise ValueError(f"{name} has no column(s) {missing}; it has {list(frame.columns)}. Name them with "
                             "split_column=, patient_column=, label_column=.")
        frames.append((_as_text(frame, *columns), title, f"panel:{name}"))
    chosen = _chosen_patients(frames[0][0], *columns, max_patients, seed)
    all_labels = sorted(set().union(*(set(f[label_column]) for f, _, _ in frames)))
    colours = {label: _CLASS_COLOURS[k % len(_CLASS_COLOURS)] for k, label in enumerate(all_labels)}
    splits = _split_order(set().union(*(set(f[split_column]) for f, _, _ in frames)))
    width, header, footer, panel_gap = 9.0, 0.45, 0.45, 0.15

    def draw(ax, frame, title, panel):
        return _split_panel(ax, frame, chosen, columns=columns, colours=colours, width=width, title=title,
                            splits=splits, max_images=max_images_per_patient, panel=panel)

    # Draw each panel once on a scratch figure to learn its height, then lay them out.
    heights = [draw(Figure().add_axes((0, 0, 1, 1)), *frame) for frame in frames]
    total = header + sum(heights) + panel_gap * (len(heights) - 1) + footer
    fig = Figure(figsize=(width, total))
    bottom = total - header
    for frame, height in zip(frames, heights):
        bottom -= height
        draw(fig.add_axes((0, bottom / total, 1, height / total)), *frame)
        bottom -= panel_gap
    fig.text(0.5, 1 - 0.22 / total,
             f"One square per image, one numbered frame per patient: {len(chosen)} of "
             f"{frames[0][0][patient_column].nunique()} patients drawn (seed {seed})",
             ha="center", va="center", fontsize=10)
    handles = [Patch(facecolor=colours[label], label=label) for label in all_labels]
    handles.append(Patch(facecolor="white", edgecolor=_LEAK, linewidth=1.8, label="patient in more than one split"))
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.05 / total), ncol=len(handles),
               fontsize=8.5, frameon=False)
    return fig

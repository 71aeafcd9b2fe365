"""covid_tutorial.bench: each benchmark measures what it says, in one run."""

import pytest

from covid_tutorial import bench
from covid_tutorial.bench import benchmark_gradcam


def test_benchmark_reports_both_timings_from_one_run(model_and_image):
    model, _ = model_and_image
    result = benchmark_gradcam(model, repeats=2, warmup=1, scorecam_maps=4, scorecam_repeats=1)
    assert result.forward_ms > 0 and result.gradcam_ms > 0 and result.scorecam_ms > 0
    assert result.gradcam_over_forward == pytest.approx(result.gradcam_ms / result.forward_ms)
    assert result.layer == "conv5_block3_out" and result.image_size == 64
    assert result.to_dict()["scorecam_maps"] == 4 and "Score-CAM with 4 maps" in str(result)


def test_speed_table_measures_images_per_second_with_and_without_xla():
    speed = bench.speed_table(["vgg16"], image_size=32, batch_size=4, xla=(False, True), repeats=2, train=False, progress=False)
    table = speed.table
    assert table[["model", "precision", "xla"]].to_numpy().tolist() == [["VGG16", "float32", False], ["VGG16", "float32", True]]
    assert (table["images_per_s"] > 0).all() and (table["latency_ms"] > 0).all()
    assert table["device"].str.startswith(("CPU: ", "GPU: ")).all()
    assert ["VGG16", "32", "4", "float32", "on"] in [row[:5] for row in markdown_rows(str(speed))]


def markdown_rows(text: str) -> list[list[str]]:
    """The cells of each row of the Markdown tables in ``text``, stripped of padding."""
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in text.splitlines() if line.startswith("|")]

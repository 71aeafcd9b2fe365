import pytest

from covid_tutorial.profiles import PROFILES, get_profile


def test_named_profile_and_environment(monkeypatch):
    monkeypatch.setenv("COVID_TUTORIAL_PROFILE", "gpu")
    assert get_profile().name == "gpu"
    assert get_profile("ci").name == "ci"
    monkeypatch.delenv("COVID_TUTORIAL_PROFILE")
    assert get_profile().name == "cpu"


def test_unknown_profile_names_the_choices():
    with pytest.raises(ValueError, match="ci, page, cpu, gpu"):
        get_profile("laptop")


def test_weights_override_for_offline_machines(monkeypatch):
    assert get_profile("cpu").weights == "imagenet"
    monkeypatch.setenv("COVID_TUTORIAL_WEIGHTS", "none")
    assert get_profile("cpu").weights is None


def test_profiles_shrink_work_from_gpu_to_ci():
    ci, cpu, gpu = PROFILES["ci"], PROFILES["cpu"], PROFILES["gpu"]
    assert ci.weights is None and cpu.weights == "imagenet"
    assert max(ci.phantom_patients, cpu.phantom_patients) < gpu.phantom_patients
    assert ci.phantom_size < cpu.phantom_size < gpu.phantom_size
    assert ci.image_size < cpu.image_size == 224


def test_page_profile_shows_more_than_ci_on_two_cpu_cores():
    """The committed pages: larger images and more patients and epochs than the tests, still
    random weights and phantoms sized for 2 CPU cores."""
    ci, page, cpu = PROFILES["ci"], PROFILES["page"], PROFILES["cpu"]
    assert ci.image_size < page.image_size < cpu.image_size
    assert page.phantom_patients > ci.phantom_patients and page.head_epochs > ci.head_epochs
    assert page.weights is None and page.folds > ci.folds

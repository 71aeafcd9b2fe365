import pytest

from covid_tutorial.profiles import PROFILES, get_profile


def test_named_profile_and_environment(monkeypatch):
    monkeypatch.setenv("COVID_TUTORIAL_PROFILE", "gpu")
    assert get_profile().name == "gpu"
    assert get_profile("ci").name == "ci"
    monkeypatch.delenv("COVID_TUTORIAL_PROFILE")
    assert get_profile().name == "cpu"


def test_unknown_profile_names_the_choices():
    with pytest.raises(ValueError, match="ci, cpu, gpu"):
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

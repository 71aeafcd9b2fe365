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


def test_a_lesson_reads_its_sizes_from_the_profile():
    from covid_tutorial.profiles import PROFILES, LessonSizes

    page, cpu = PROFILES["page"].lesson("06"), PROFILES["cpu"].lesson("06")
    assert page.values("IMAGE_SIZE EPOCHS") == (128, 6)
    assert cpu.values("FINE_TUNE_EPOCHS BATCH_SIZE EPOCHS") == (0, 4, None), "absent: None, the profile's own"
    gpu = PROFILES["gpu"].lesson("04")
    assert gpu.values("BATCH_SIZE HEAD_EPOCHS") == (PROFILES["gpu"].batch_size, PROFILES["gpu"].head_epochs), "profile.FIELD"
    assert PROFILES["ci"].lesson("04").values("SOURCE_PATIENTS")[0] != PROFILES["page"].lesson("04").values("SOURCE_PATIENTS")[0]
    assert len(page.values()) == len(page.sizes) and list(page.sizes)[0] == "IMAGE_SIZE", "the file's order"
    with pytest.raises(KeyError, match="no knob NOPE"):
        page.values("IMAGE_SIZE NOPE")
    with pytest.raises(KeyError, match="99"):
        LessonSizes.of("99", "ci")
    table = page.table()
    assert list(table.columns)[0] == "page (this run)" and table.loc["EPOCHS", "cpu"] == "(none)"
    assert table.loc["IMAGE_SIZE", "ci"] == "64"


def test_every_lesson_size_is_defined_for_every_profile_or_deliberately_left_to_it():
    import tomllib

    from covid_tutorial.profiles import LESSONS_FILE, PROFILES

    lessons = tomllib.loads(LESSONS_FILE.read_text(encoding="utf-8"))
    for number, knobs in lessons.items():
        for name, per_profile in knobs.items():
            unknown = set(per_profile) - set(PROFILES) - {"default"}
            assert not unknown, f"lesson {number}, {name}: {unknown} is not a profile"
            for value in per_profile.values():
                if isinstance(value, str) and value.startswith("profile."):
                    assert hasattr(PROFILES["ci"], value.removeprefix("profile.")), f"{number} {name}: {value}"

"""covid_tutorial.system: atomic files and folders, progress bars in logs."""

import io
import sys
import time

import numpy as np
import pytest

from covid_tutorial.system import atomic_path, progress_bar, write_json


def test_a_file_is_replaced_whole_or_not_at_all(tmp_path):
    target = tmp_path / "state.json"
    write_json(target, {"epoch": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text('{"epoch": 2, "half-writ')
        raise RuntimeError("killed while writing")
    assert target.read_text() == '{\n  "epoch": 1\n}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"], "the temporary file was left behind"
    write_json(target, {"epoch": 2})
    assert '"epoch": 2' in target.read_text()


def test_the_temporary_name_keeps_the_suffix_so_numpy_writes_where_asked(tmp_path):
    with atomic_path(tmp_path / "best.npz") as tmp:
        np.savez(tmp, np.arange(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.npz"]
    np.testing.assert_array_equal(np.load(tmp_path / "best.npz")["arr_0"], np.arange(3))


def test_a_folder_replaces_a_folder_unless_the_first_one_wins(tmp_path):
    target = tmp_path / "model"
    for content in ("first", "second"):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "weights").write_text(content)
    assert (target / "weights").read_text() == "second"
    with atomic_path(target, first_wins=True) as tmp:
        tmp.mkdir()
        (tmp / "weights").write_text("third")
    assert (target / "weights").read_text() == "second", "a whole folder made by another process was replaced"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_progress_bar_in_a_log_draws_twice_on_one_line(monkeypatch):
    log = io.StringIO()  # not a terminal
    monkeypatch.setattr(sys, "stderr", log)
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)

    def slow(n):  # on a terminal the bar would redraw at every step (0.1 s apart at least)
        for i in range(n):
            time.sleep(0.15)
            yield i

    assert list(progress_bar(slow(4), desc="Reading images", total=4)) == [0, 1, 2, 3]
    drawn = log.getvalue()
    assert drawn.count("\n") == 1 and drawn.count("Reading images") == 2, repr(drawn)
    assert "4/4" in drawn


def test_keras_prints_one_line_per_epoch_in_a_log_and_its_bar_in_a_terminal(monkeypatch):
    from covid_tutorial.system import keras_verbosity

    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert keras_verbosity(True) == 2 and keras_verbosity(False) == 0

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    assert keras_verbosity(True) == 1


def test_start_lesson_prints_the_versions_and_returns_the_profile(capsys, monkeypatch):
    import keras
    import tensorflow as tf

    import covid_tutorial
    from covid_tutorial.lesson import start_lesson

    monkeypatch.setenv("COVID_TUTORIAL_PROFILE", "page")
    profile = start_lesson()
    line = capsys.readouterr().out.strip()
    assert profile.name == "page"
    assert line == (f"covid_tutorial {covid_tutorial.__version__} | TensorFlow {tf.__version__} | "
                    f"Keras {keras.__version__} | profile page")
    assert start_lesson("ci").name == "ci"

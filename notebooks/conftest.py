"""nbval runs the notebooks in the ci profile: phantoms, small images, no downloads."""

import os

os.environ.setdefault("COVID_TUTORIAL_PROFILE", "ci")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
collect_ignore = ["run_notebooks.py", "profile_cells.py"]

"""nbval runs the notebooks in the ci profile: phantoms, small images, no downloads."""

import os
import tempfile

os.environ.setdefault("COVID_TUTORIAL_PROFILE", "ci")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Decoded images and unpacked arrays go to a cache of this session, not the checkout's data/.
os.environ.setdefault("COVID_TUTORIAL_CACHE", tempfile.mkdtemp(prefix="covid-tutorial-cache-"))

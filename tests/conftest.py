"""Test settings. Property tests run a fixed, derandomized set of examples so a CI run is reproducible;
set GRIDSHIFT_HYPOTHESIS=explore to draw new random examples while developing."""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("explore" if os.environ.get("GRIDSHIFT_HYPOTHESIS") == "explore" else "ci")

"""Test settings. Property tests run a fixed, derandomized set of examples (and no saved ones) so every run
is reproducible; set GRIDSHIFT_HYPOTHESIS=explore to draw new random examples while developing (failures
found that way are saved and replayed in explore mode only)."""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile("explore" if os.environ.get("GRIDSHIFT_HYPOTHESIS") == "explore" else "ci")

"""Suite-wide configuration: hypothesis profiles and what pytest must not collect.

The profile comes from the HYPOTHESIS_PROFILE environment variable (``dev``
when it is unset); ``.ci/run`` and ``tests/stress/run_stress.py`` set ``ci``.
Tests that pass their own ``@settings(...)`` keep those values and take the
rest from the loaded profile.
"""

import os

from hypothesis import HealthCheck, settings

# Everyday runs: random examples, the example database on, but no per-example
# deadline, which only measures how busy this shared 2-core machine is (the
# pytest-timeout limit still stops a hung test).
settings.register_profile("dev", deadline=None, print_blob=True)

# CI and stress runs: the same examples on every run (derandomize, no example
# database carried between runs), so a failure reproduces and a pass means the
# same thing each time; the health check that times example generation is off
# for the same reason as the deadline.
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)

settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# The stress script runs the suite; it is not a test module.
collect_ignore_glob = ["stress/*"]

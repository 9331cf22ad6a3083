"""Fixtures for the adapter integration tests: the fake ARM + Resource Graph server over HTTPS."""

from tests.integration.fake_arm import fake_arm  # noqa: F401  (re-exported fixture)

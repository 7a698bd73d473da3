"""The fault tests use the memories tests' people, organization and contexts."""

from tests.memories.conftest import client_for, make_user, world  # noqa: F401 - fixtures

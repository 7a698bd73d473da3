"""Helpers shared by the test suite: real servers and processes started from the project's files."""

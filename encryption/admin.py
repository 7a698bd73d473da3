"""The encryption app has no models of its own: its fields live in other apps' models."""

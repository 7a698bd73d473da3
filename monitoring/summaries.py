"""Each alert in words: one sentence from its detector, subject and counts.

"14 failed sign-ins for alice from 3 addresses in 15 minutes" reads faster than the detector's
figures. Sentences are built from the counts the detector stored (``Alert.evidence["counts"]``);
a detector without a sentence here, or an alert whose counts lack a figure the sentence needs
(alerts raised before the figure was stored), is shown by its stored summary.
"""

from __future__ import annotations

from collections.abc import Callable


def duration_text(seconds) -> str:
    """``900`` → ``15 minutes``; ``3600`` → ``1 hour``; ``86400`` → ``1 day``; ``45`` → ``45 seconds``."""
    seconds = int(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def _plural(count, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def _brute_force(subject: str, counts: dict) -> str:
    text = f"{_plural(counts['count'], 'failed sign-in')} for {subject}"
    if counts.get("addresses"):
        text += f" from {_plural(counts['addresses'], 'address', 'addresses')}"
    return text + f" in {duration_text(counts['window_seconds'])}"


def _spraying(subject: str, counts: dict) -> str:
    attempts = f"{_plural(counts['events'], 'failed sign-in')} " if counts.get("events") else "Failed sign-ins "
    return (
        f"{attempts}for {_plural(counts['count'], 'account')} from {subject} "
        f"in {duration_text(counts['window_seconds'])}"
    )


def _lockout(subject: str, counts: dict) -> str:
    return f"{subject} was locked out {_plural(counts['count'], 'time')} in {duration_text(counts['window_seconds'])}"


def _window(noun_one: str, noun_many: str, preposition: str = "from") -> Callable[[str, dict], str]:
    def sentence(subject: str, counts: dict) -> str:
        return (
            f"{_plural(counts['count'], noun_one, noun_many)} {preposition} {subject} "
            f"in {duration_text(counts['window_seconds'])}"
        )

    return sentence


def _rate(noun: str) -> Callable[[str, dict], str]:
    def sentence(subject: str, counts: dict) -> str:
        window = duration_text(counts["window_seconds"])
        return (
            f"{counts['volume']} {noun} by {subject} in {window}; "
            f"usually {counts['baseline_mean_per_window']:.1f} per {window}"
        )

    return sentence


def _unusual_hour(subject: str, counts: dict) -> str:
    return (
        f"{subject} signed in at {counts['hour_utc']:02d}:00 UTC, an hour at which "
        f"{counts['logins_near_hour']} of their {counts['baseline_logins']} earlier sign-ins took place"
    )


SENTENCES: dict[str, Callable[[str, dict], str]] = {
    "brute_force": _brute_force,
    "password_spraying": _spraying,
    "lockout": _lockout,
    "unusual_login_hour": _unusual_hour,
    "permission_probing": _window("refused request (permission denied)", "refused requests (permission denied)"),
    "api_error_burst": _window("refused API request (401/403/429)", "refused API requests (401/403/429)", "for"),
    "signature_failures": _window("request signature failure", "request signature failures", "for"),
    "deprecated_endpoint": _window("call to a deprecated endpoint", "calls to deprecated endpoints", "by"),
    "api_key_rate": _rate("requests"),
    "bulk_read": _rate("memory reads (an export counts as many)"),
}


def alert_sentence(*, detector: str, subject: str, counts: dict | None, summary: str) -> str:
    """The alert in one human sentence (first letter upper case); ``summary`` when no sentence fits."""
    build = SENTENCES.get(detector)
    text = ""
    if build is not None and isinstance(counts, dict):
        try:
            text = build(subject or "?", counts)
        except (KeyError, TypeError, ValueError):
            text = ""
    text = text or summary or detector
    return text[:1].upper() + text[1:]

"""``{% load emails %}``: ``{{ value|utc }}`` shows a time as ``2026-03-02 09:01:00 UTC`` (core.emails)."""

from django import template

from core.emails import email_time

register = template.Library()
register.filter("utc", email_time)

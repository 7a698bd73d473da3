"""Tests behind the reasons of deploy/security/accepted-findings.toml, where a reason is behaviour."""

from __future__ import annotations

import re

from accounts.views.mfa import _qr_svg


def test_qr_svg_marked_safe_never_carries_text_from_the_uri():
    """The enrollment page marks segno's SVG safe: markup in the URI must never reach it as markup or text."""
    svg = _qr_svg('otpauth://totp/Ninaivalaigal:<script>alert(1)</script>"&<b>x</b>?secret=JBSWY3DPEHPK3PXP')
    assert set(re.findall(r"</?([\w:-]+)", svg)) == {"svg", "title", "path"}
    assert "script" not in svg and "alert" not in svg and "<b>" not in svg and "&" not in svg
    assert re.search(r"<title>([^<]*)</title>", svg).group(1) == "QR code of your new authenticator key"

"""The minimal baseline of the end-to-end benchmark (bench/e2e_bench.py).

A Django 5.2 + DRF app with the platform's memory shape (context, author, kind, source, content,
metadata, tags, timestamps) and header-key authentication (one indexed query by the SHA-256 of the
key), and nothing else: no encryption, audit, throttles, monitoring or security middleware. It is
what the platform is compared with, served by the same server settings from the same PostgreSQL.
"""

"""Thin views of the account pages: each calls one service and renders a template."""

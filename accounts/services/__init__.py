"""Write use cases of the accounts app, one module per topic.

Every service is keyword-only, says in its docstring who checked permission, runs in a
transaction and records its own audit event in it; emails start from ``transaction.on_commit``.
"""

"""The ground floor: request context, request helpers, site-wide middleware, JSON logging,
the sanitiser, Celery context hooks and shared admin mixins. Imports only Django and libraries."""

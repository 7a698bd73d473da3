"""The settings of the monitoring app and their defaults, read when used (so tests can override them).

Detector thresholds and windows are app defaults, overridden in a settings module; the
environment sets only the per-deployment ones that ``config/settings/base.py`` reads (who gets
alerts, the webhook, the /metrics credentials, readiness checks, routes; see ``.env.example``).
``monitoring/checks.py`` refuses unsafe values; ``docs/monitoring.md`` explains each detector.
"""

from __future__ import annotations

from core.settings import AppSettings

DEFAULTS = {
    # --- Detectors: a count equal to a threshold fires ---
    # Brute force: failed logins (password or MFA) against one account in the window (failures; seconds).
    "MONITORING_BRUTE_FORCE_THRESHOLD": 10,
    "MONITORING_BRUTE_FORCE_WINDOW_SECONDS": 900,
    # Password spraying / credential stuffing: distinct accounts failing from one IP (accounts; seconds).
    "MONITORING_SPRAYING_ACCOUNT_THRESHOLD": 10,
    "MONITORING_SPRAYING_WINDOW_SECONDS": 900,
    # Lockouts of one account in the window (lockouts; seconds).
    "MONITORING_LOCKOUT_THRESHOLD": 1,
    "MONITORING_LOCKOUT_WINDOW_SECONDS": 3600,
    # Unusual login hour: the user's baseline of successful logins over this many days (days).
    "MONITORING_UNUSUAL_HOUR_BASELINE_DAYS": 30,
    # Silent below this many baseline logins (logins).
    "MONITORING_UNUSUAL_HOUR_MIN_LOGINS": 10,
    # Hours either side of the login's UTC hour that count as the same time of day (hours).
    "MONITORING_UNUSUAL_HOUR_TOLERANCE_HOURS": 1,
    # Unusual when that share of baseline logins is below this (fraction: 0.05 = 5 %).
    "MONITORING_UNUSUAL_HOUR_MIN_SHARE": 0.05,
    # New device or IP: compared with the user's successful logins of this many days (days).
    "MONITORING_NEW_DEVICE_LOOKBACK_DAYS": 90,
    # Silent until the user has this many earlier logins (logins).
    "MONITORING_NEW_DEVICE_MIN_PRIOR_LOGINS": 3,
    # Groups whose grant is a privilege escalation, which always alerts (group names).
    # The two security roles' groups (accounts/roles.py) are among them.
    "MONITORING_PRIVILEGED_GROUPS": ["security", "security-admins", "Security auditor", "Security administrator"],
    # Team and organization roles whose grant is a privilege escalation (role names).
    "MONITORING_PRIVILEGED_ROLES": ["admin", "owner"],
    # Probing: permission-denied events from one user, key or IP in the window (denials; seconds).
    "MONITORING_PROBING_THRESHOLD": 20,
    "MONITORING_PROBING_WINDOW_SECONDS": 300,
    # API key request rate: a key's requests are counted over this window (seconds),
    "MONITORING_API_RATE_WINDOW_SECONDS": 300,
    # and alert when they reach this floor (requests)
    "MONITORING_API_RATE_MIN_REQUESTS": 100,
    # and this factor times the key's own mean per window (times)
    "MONITORING_API_RATE_FACTOR": 10.0,
    # over this baseline (days).
    "MONITORING_API_RATE_BASELINE_DAYS": 7,
    # API errors (401 refused key, 403 denied, 429 rate limited) from one key or IP (errors; seconds).
    "MONITORING_API_ERROR_THRESHOLD": 30,
    "MONITORING_API_ERROR_WINDOW_SECONDS": 300,
    # Request signature failures from one key or IP (failures; seconds).
    "MONITORING_SIGNATURE_FAILURE_THRESHOLD": 5,
    "MONITORING_SIGNATURE_FAILURE_WINDOW_SECONDS": 300,
    # Deprecated endpoint calls by one key, user or IP: one low alert a day (calls; seconds).
    "MONITORING_DEPRECATED_ENDPOINT_THRESHOLD": 1,
    "MONITORING_DEPRECATED_ENDPOINT_WINDOW_SECONDS": 86400,
    # Bulk memory reads/exports: a user's reads are counted over this window (seconds),
    "MONITORING_BULK_READ_WINDOW_SECONDS": 3600,
    # and alert when they reach this floor (events)
    "MONITORING_BULK_READ_MIN_EVENTS": 200,
    # and this factor times the user's own mean per window (times)
    "MONITORING_BULK_READ_FACTOR": 5.0,
    # over this baseline (days);
    "MONITORING_BULK_READ_BASELINE_DAYS": 14,
    # one export event weighs as much as this many reads (reads).
    "MONITORING_BULK_READ_EXPORT_WEIGHT": 50,
    # --- Real-time detection of high-volume events (reads and lists) ---
    # On: the events of MONITORING_BATCHED_ACTIONS are handed off per principal and short interval
    # (one task per user per interval and web process, not one per event), and volume detectors sum
    # per-minute buckets; off: every event is handed off alone and its window re-aggregated (bool).
    "MONITORING_DETECTION_BATCHING": True,
    # The actions handed off per principal while batching is on (audit action names).
    "MONITORING_BATCHED_ACTIONS": ["memory.read", "memory.list", "context.read", "context.list"],
    # One detection task per principal per this interval; a burst waits at most this long (seconds).
    "MONITORING_DETECTION_BATCH_SECONDS": 1.0,
    # A minute's volume bucket is kept (cached) once this long past the minute's end; an event
    # committed later than that after its timestamp is counted by the sweep only (seconds).
    "MONITORING_VOLUME_BUCKET_SETTLE_SECONDS": 30,
    # Audit silence: no request-driven audit event this long (seconds) while this many requests were served.
    "MONITORING_AUDIT_SILENCE_SECONDS": 900,
    "MONITORING_AUDIT_SILENCE_MIN_REQUESTS": 50,
    # Event-by-event detectors are re-checked this far back by each sweep, catching lost hand-offs (seconds).
    "MONITORING_SWEEP_LOOKBACK_SECONDS": 900,
    # A scheduled job is late when it has not started this long after it was due (seconds).
    "MONITORING_JOB_LATE_GRACE_SECONDS": 600,
    # Job runs kept for the console (days).
    "MONITORING_JOB_RUN_RETENTION_DAYS": 30,
    # Process posture (system.process_started, detector process_posture). Effective capabilities a
    # process may hold without an alert; default none (names, e.g. cap_net_bind_service).
    "MONITORING_POSTURE_CAPABILITY_BASELINE": [],
    # What raises the alert: root_user (uid 0), root_fs_writable, capabilities beyond the baseline (names).
    "MONITORING_POSTURE_CHECKS": ["root_user", "root_fs_writable", "capabilities"],
    # Its severity: high; the embedded default (config/settings/local.py) says low (severity name).
    "MONITORING_POSTURE_SEVERITY": "high",
    # Later starts of one role on one host fold into its open alert within this window (seconds).
    "MONITORING_POSTURE_DEDUPE_WINDOW_SECONDS": 604800,
    # --- Deployments and the security gate (the dashboard) ---
    # The environment manage.py record_deployment records when given none (a name: production, staging).
    "MONITORING_DEPLOYMENT_ENVIRONMENT": "production",
    # Deploys and rollbacks listed on the dashboard (rows).
    "MONITORING_DEPLOYMENTS_SHOWN": 5,
    # The security gate's result file, written by scripts/security_gate.py; empty:
    # VAR_DIR/security/gate-result.json (path).
    "MONITORING_SECURITY_GATE_RESULT_FILE": "",
    # The dashboard calls the gate's result stale when it is older than this (days).
    "MONITORING_SECURITY_GATE_STALE_DAYS": 7,
    # --- Alerts and notifications ---
    # Repeated triggers with the same dedupe key within this window update one alert (seconds).
    "MONITORING_ALERT_DEDUPE_WINDOW_SECONDS": 3600,
    # Audit event ids kept as evidence on one alert; counts are always complete (ids).
    "MONITORING_ALERT_EVIDENCE_LIMIT": 50,
    # The longest a suppression rule may run, from its creation (days).
    "MONITORING_SUPPRESSION_MAX_DAYS": 30,
    # Events of a bootstrap run (ensure_admin, load_demo_data) up to this long after its
    # system.bootstrap_started event raise their alerts already resolved (seconds).
    "MONITORING_BOOTSTRAP_WINDOW_SECONDS": 3600,
    # Who describes a subject the monitoring app may not read itself: subject type -> dotted path
    # of a function (list of subjects -> {subject: {"name", "owner", "link"}}); the settings
    # wire the api app's key names here ({} : subjects shown as stored).
    "MONITORING_SUBJECT_DESCRIBERS": {},
    # Days of alerts shown in the severity chart of the alert console (days).
    "MONITORING_CHART_DAYS": 14,
    # Notification channels per severity (severity -> list of "email", "webhook").
    "MONITORING_NOTIFICATION_ROUTES": {
        "critical": ["email", "webhook"],
        "high": ["email", "webhook"],
        "medium": ["webhook"],
        "low": [],
    },
    # Recipients of alert emails; empty: every active superuser with an email address (addresses).
    "MONITORING_ALERT_EMAILS": [],
    # Recipients of report emails; empty: the alert recipients (addresses).
    "MONITORING_REPORT_EMAILS": [],
    # Webhook receiver; empty: no webhook (https URL, or http to a loopback receiver).
    "MONITORING_WEBHOOK_URL": "",
    # The webhook's HMAC-SHA256 secret, required with a URL (32+ characters).
    "MONITORING_WEBHOOK_SECRET": "",
    # Timeout of one webhook request (seconds).
    "MONITORING_WEBHOOK_TIMEOUT_SECONDS": 5.0,
    # Outbox retries back off exponentially from the base up to the cap; never dropped (seconds; seconds).
    "MONITORING_NOTIFICATION_RETRY_BASE_SECONDS": 30,
    "MONITORING_NOTIFICATION_RETRY_MAX_SECONDS": 3600,
    # A delivery claimed this long ago by a worker that never finished is due again: at-least-once,
    # so receivers deduplicate on the delivery id (seconds).
    "MONITORING_NOTIFICATION_CLAIM_TIMEOUT_SECONDS": 300,
    # Per destination at most this many deliveries per window; the rest wait (deliveries; seconds).
    "MONITORING_NOTIFICATION_RATE_LIMIT": 20,
    "MONITORING_NOTIFICATION_RATE_WINDOW_SECONDS": 600,
    # --- Health, metrics, tallies ---
    # Checks that make /readyz answer 503 (names of monitoring.health.CHECKS).
    "MONITORING_READINESS_CHECKS": ["database", "cache", "broker", "worker", "beat"],
    # A worker heartbeat older than this fails readiness; the heartbeat job runs every 60 (seconds).
    "MONITORING_WORKER_HEARTBEAT_MAX_AGE_SECONDS": 180,
    # A last beat run older than this fails readiness; beat saves run times every 180 (seconds).
    "MONITORING_BEAT_MAX_AGE_SECONDS": 600,
    # Queries slower than this are logged on "monitoring.slow_query", never with parameters (milliseconds).
    "MONITORING_SLOW_QUERY_MS": 500.0,
    # /metrics bearer token; with neither it nor networks the endpoint answers 404 (32+ characters).
    "MONITORING_METRICS_TOKEN": "",
    # Client networks allowed to read /metrics (CIDRs).
    "MONITORING_METRICS_ALLOWED_NETWORKS": [],
    # Request counts are buffered per process and written at most this often (seconds).
    "MONITORING_REQUEST_COUNT_FLUSH_SECONDS": 10,
    # Per-minute request and login tallies kept (days).
    "MONITORING_TALLY_RETENTION_DAYS": 35,
}
_settings = AppSettings(DEFAULTS)
get = _settings.get
seconds = _settings.seconds

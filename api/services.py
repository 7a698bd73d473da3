"""Writes of the API security layer: API keys, service accounts, nonces, deprecated-call counts.

One function per use case; the key page under /accounts/api-keys/, the admin and tests all call
these. Each service that changes security state takes the acting user (``actor=``), checks
permission itself, runs in one transaction and records its audit event in it. Step-up
re-authentication (OWASP ASVS 4.0.3 V3.7.1) is checked by the *views* that call them (the page
and the admin), because it is a property of the browser session, not of the use case.
"""

from __future__ import annotations

import contextlib
import datetime
import hmac
import ipaddress
import json
import random
import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.text import slugify
from redis.exceptions import LockError

import audit
from accounts.normalisation import CONTROL_CHARACTERS_MESSAGE, contains_control_characters
from api import conf, keys
from api.models import ApiKey, DeprecatedCall, RequestNonce, ServiceAccount
from api.scopes import unknown_scopes

NAME_MAX_LENGTH = 100
NETWORKS_MAX_COUNT = 20
# One in this many nonce inserts also deletes the nonces past the window (the periodic task
# api_nonces_purge does the same on a schedule).
NONCE_PURGE_ONE_IN = 200


@dataclass(frozen=True)
class IssuedKey:
    """A new key and its two secrets. The secrets exist only here: show them once, then drop them."""

    api_key: ApiKey
    key: str
    signing_secret: str


# ---------------------------------------------------------------------------------------------
# Permission
# ---------------------------------------------------------------------------------------------
def is_service_account(user) -> bool:
    return ServiceAccount.objects.filter(user_id=user.pk).exists()


def api_key_can_manage(*, actor, owner) -> bool:
    """Whether ``actor`` may issue, rotate or revoke keys of ``owner``.

    People manage their own keys; administrators with the ``api.change_apikey`` permission
    manage anyone's, and are the only ones who manage a service account's.
    """
    if actor is None or not actor.is_authenticated or not actor.is_active:
        return False
    if actor.has_perm("api.change_apikey"):
        return True
    return actor.pk == owner.pk and not is_service_account(owner)


def _require_manage(actor, owner) -> None:
    if not api_key_can_manage(actor=actor, owner=owner):
        raise PermissionDenied("You may not manage the API keys of this account.")


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------
def _clean_name(name) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValidationError({"name": ["Give the key a name."]})
    name = name.strip()
    if contains_control_characters(name):
        raise ValidationError({"name": [CONTROL_CHARACTERS_MESSAGE]})
    if len(name) > NAME_MAX_LENGTH:
        raise ValidationError({"name": [f"At most {NAME_MAX_LENGTH} printable characters."]})
    return name


def _clean_scopes(scopes) -> list[str]:
    scopes = list(dict.fromkeys(scopes or []))
    if not scopes:
        raise ValidationError({"scopes": ["Choose at least one scope."]})
    unknown = unknown_scopes(scopes)
    if unknown:
        raise ValidationError({"scopes": [f"Unknown scope: {', '.join(unknown)}."]})
    return sorted(scopes)


def _clean_networks(networks) -> list[str]:
    cleaned = []
    for network in networks or []:
        try:
            cleaned.append(str(ipaddress.ip_network(str(network).strip(), strict=False)))
        except ValueError:
            raise ValidationError(
                {"allowed_networks": [f"Not an IP address or CIDR network: {network!s:.60}."]}
            ) from None
    if len(cleaned) > NETWORKS_MAX_COUNT:
        raise ValidationError({"allowed_networks": [f"At most {NETWORKS_MAX_COUNT} networks."]})
    return list(dict.fromkeys(cleaned))


def _clean_expiry(expires_at: datetime.datetime | None, now: datetime.datetime) -> datetime.datetime:
    if expires_at is None:
        return now + datetime.timedelta(days=conf.get("API_KEY_DEFAULT_LIFETIME_DAYS"))
    if timezone.is_naive(expires_at):
        raise ValidationError({"expires_at": ["Give a timezone-aware date and time."]})
    if expires_at <= now:
        raise ValidationError({"expires_at": ["The expiry must be in the future."]})
    maximum = now + datetime.timedelta(days=conf.get("API_KEY_MAX_LIFETIME_DAYS"))
    if expires_at > maximum:
        raise ValidationError({"expires_at": [f"A key lives at most {conf.get('API_KEY_MAX_LIFETIME_DAYS')} days."]})
    return expires_at


# ---------------------------------------------------------------------------------------------
# API keys
# ---------------------------------------------------------------------------------------------
def _create_key(*, owner, name, scopes, networks, expires_at, actor, rotated_from=None) -> IssuedKey:
    signing_secret = keys.generate_signing_secret()
    for _attempt in range(5):
        new = keys.generate_key()
        try:
            with transaction.atomic():
                api_key = ApiKey.objects.create(
                    prefix=new.prefix,
                    name=name,
                    user=owner,
                    secret_hash=new.secret_hash,
                    signing_secret=signing_secret,
                    scopes=scopes,
                    allowed_networks=networks,
                    created_by=actor,
                    expires_at=expires_at,
                    rotated_from=rotated_from,
                )
            return IssuedKey(api_key=api_key, key=new.key, signing_secret=signing_secret)
        except IntegrityError:
            # 60-bit prefixes practically never collide; if one does, draw again.
            if ApiKey.objects.filter(prefix=new.prefix).exists():
                continue
            raise
    raise RuntimeError("could not draw a unique API key prefix")  # pragma: no cover


def api_key_issue(
    *,
    actor,
    owner,
    name: str,
    scopes,
    expires_at: datetime.datetime | None = None,
    allowed_networks=(),
) -> IssuedKey:
    """Issue a key to ``owner`` (a person or a service account's user); permission checked here.

    The returned secrets are shown to the caller once; only the hash and the encrypted signing
    secret are stored. Records ``API_KEY_ISSUED``.
    """
    _require_manage(actor, owner)
    now = timezone.now()
    name = _clean_name(name)
    scopes = _clean_scopes(scopes)
    networks = _clean_networks(allowed_networks)
    expires_at = _clean_expiry(expires_at, now)
    if not owner.is_active:
        raise ValidationError({"owner": ["The account is not active."]})
    with transaction.atomic():
        active = ApiKey.objects.filter(user=owner).usable(now=now).count()
        if active >= conf.get("API_KEY_MAX_PER_USER"):
            raise ValidationError(
                {"non_field_errors": [f"An account holds at most {conf.get('API_KEY_MAX_PER_USER')} active keys."]}
            )
        issued = _create_key(
            owner=owner, name=name, scopes=scopes, networks=networks, expires_at=expires_at, actor=actor
        )
        audit.record(
            action=audit.Action.API_KEY_ISSUED,
            actor=actor,
            subject=owner,
            target=issued.api_key,
            api_key_id=issued.api_key.prefix,
            context={
                "scopes": scopes,
                "expires_at": expires_at.isoformat(),
                "allowed_networks": len(networks),
                "service_account": is_service_account(owner),
            },
        )
    return issued


def api_key_rotate(*, actor, api_key: ApiKey, overlap_seconds: int | None = None) -> IssuedKey:
    """Issue a successor of ``api_key`` (same owner, name, scopes, networks) and end the old one.

    The old key stays valid for ``overlap_seconds`` (default ``API_KEY_ROTATION_OVERLAP_SECONDS``,
    at most ``API_KEY_ROTATION_MAX_OVERLAP_SECONDS``; 0 ends it now) so deployments can switch
    without downtime; then it expires. Records ``API_KEY_ROTATED``. Permission checked here.
    """
    owner = api_key.user
    _require_manage(actor, owner)
    if overlap_seconds is None:
        overlap_seconds = conf.get("API_KEY_ROTATION_OVERLAP_SECONDS")
    if not isinstance(overlap_seconds, int) or isinstance(overlap_seconds, bool) or overlap_seconds < 0:
        raise ValidationError({"overlap_seconds": ["A whole number of seconds, 0 or more."]})
    if overlap_seconds > conf.get("API_KEY_ROTATION_MAX_OVERLAP_SECONDS"):
        raise ValidationError(
            {"overlap_seconds": [f"At most {conf.get('API_KEY_ROTATION_MAX_OVERLAP_SECONDS')} seconds."]}
        )
    now = timezone.now()
    with transaction.atomic():
        current = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if not current.is_usable:
            raise ValidationError({"non_field_errors": ["Only an active key can be rotated."]})
        if ApiKey.objects.filter(rotated_from=current).exists():
            raise ValidationError({"non_field_errors": ["This key has been rotated already; rotate its successor."]})
        lifetime = datetime.timedelta(days=conf.get("API_KEY_DEFAULT_LIFETIME_DAYS"))
        issued = _create_key(
            owner=owner,
            name=current.name,
            scopes=current.scopes,
            networks=current.allowed_networks,
            expires_at=now + lifetime,
            actor=actor,
            rotated_from=current,
        )
        current.expires_at = min(current.expires_at, now + datetime.timedelta(seconds=overlap_seconds))
        current.save(update_fields=["expires_at"])
        audit.record(
            action=audit.Action.API_KEY_ROTATED,
            actor=actor,
            subject=owner,
            target=current,
            api_key_id=current.prefix,
            context={
                "successor": issued.api_key.prefix,
                "overlap_seconds": overlap_seconds,
                "old_expires_at": current.expires_at.isoformat(),
            },
        )
    api_key.expires_at = current.expires_at
    return issued


def api_key_revoke(*, actor, api_key: ApiKey, reason: str = "") -> ApiKey:
    """Revoke ``api_key`` now (idempotent: revoking a revoked key changes nothing, records nothing).

    Permission checked here: whoever may manage the owner's keys, or a holder of
    ``api.revoke_apikey`` (the security administrator), who may revoke any key but not issue one.
    """
    if not (actor is not None and actor.is_active and actor.has_perm("api.revoke_apikey")):
        _require_manage(actor, api_key.user)
    reason = (reason or "").strip()[:200]
    with transaction.atomic():
        current = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if current.revoked_at is not None:
            return current
        current.revoked_at = timezone.now()
        current.revoked_by = actor
        current.revocation_reason = reason
        current.save(update_fields=["revoked_at", "revoked_by", "revocation_reason"])
        audit.record(
            action=audit.Action.API_KEY_REVOKED,
            actor=actor,
            subject=current.user,
            target=current,
            api_key_id=current.prefix,
            context={"reason": reason} if reason else {},
        )
    api_key.revoked_at, api_key.revoked_by, api_key.revocation_reason = current.revoked_at, actor, reason
    return current


def api_keys_revoke_all(*, actor, user, reason: str) -> int:
    """Revoke every usable key of ``user`` (each one audited as ``api_key_revoke`` does); return how many.

    Called on a password change when the user asks for it, and always on a password reset (the
    "this was not me" path of the security emails). Permission: as ``api_key_revoke``, per key.
    """
    count = 0
    for api_key in ApiKey.objects.filter(user=user, revoked_at__isnull=True).order_by("pk"):
        api_key_revoke(actor=actor, api_key=api_key, reason=reason)
        count += 1
    return count


LEAKED_IN_URL_REASON = "leaked_in_url"


def api_key_revoke_leaked(*, text: str) -> list[ApiKey]:
    """Revoke every valid, unrevoked key whose *whole* secret appears in ``text`` (a URL's query).

    A key sent in a URL is refused (OWASP ASVS 4.0.3 V13.1.3) and must be treated as leaked: it
    sits in proxy logs, browser history and Referer headers. Each one is revoked by the system
    (``actor=None``, reason ``leaked_in_url``: ``API_KEY_REVOKED``) and its owner is emailed after
    commit (``accounts.services.notifications``, kind ``api_key_leaked``). Only a key whose
    secret matches its stored hash is revoked, so knowing a public prefix is not enough to revoke
    someone else's key. Permission: possession of the key (it was presented).
    """
    from accounts.services.notifications import notification_schedule

    revoked: list[ApiKey] = []
    for match in keys.KEY_PATTERN.finditer(text):
        presented = match.group(0)
        with transaction.atomic():
            current = ApiKey.objects.select_for_update().select_related("user").filter(prefix=match.group(1)).first()
            if current is None or current.revoked_at is not None:
                continue
            if not hmac.compare_digest(keys.hash_key(presented), current.secret_hash):
                continue
            current.revoked_at = timezone.now()
            current.revoked_by = None
            current.revocation_reason = LEAKED_IN_URL_REASON
            current.save(update_fields=["revoked_at", "revoked_by", "revocation_reason"])
            audit.record(
                action=audit.Action.API_KEY_REVOKED,
                subject=current.user,
                target=current,
                api_key_id=current.prefix,
                context={"reason": LEAKED_IN_URL_REASON},
            )
            notification_schedule(
                user=current.user,
                kind="api_key_leaked",
                context={"key_name": current.name, "key_prefix": current.prefix},
            )
            revoked.append(current)
    return revoked


def api_key_mark_used(*, api_key: ApiKey, client_ip: str | None) -> bool:
    """Remember when and from where (that request's IP) a key was last used, at most once per interval.

    The key row is already loaded for authentication, so the check is free; the write is one
    conditional UPDATE (``last_used_at`` older than ``API_KEY_LAST_USED_INTERVAL``), which also
    keeps two processes from both writing. The write records ``API_KEY_USED``, so the trail
    shows a key's use at that granularity without an event per request.
    """
    now = timezone.now()
    threshold = now - datetime.timedelta(seconds=conf.get("API_KEY_LAST_USED_INTERVAL"))
    if api_key.last_used_at is not None and api_key.last_used_at > threshold:
        return False
    updated = (
        ApiKey.objects.filter(pk=api_key.pk)
        .exclude(last_used_at__gt=threshold)
        .update(last_used_at=now, last_used_ip=client_ip)
    )
    api_key.last_used_at, api_key.last_used_ip = now, client_ip
    if updated:
        audit.record(
            action=audit.Action.API_KEY_USED,
            actor=api_key.user,
            target=api_key,
            api_key_id=api_key.prefix,
        )
    return bool(updated)


# ---------------------------------------------------------------------------------------------
# Service accounts
# ---------------------------------------------------------------------------------------------
def service_account_create(*, actor, name: str, description: str = "") -> ServiceAccount:
    """Create a service account: a user that cannot sign in (no usable password), used by its keys.

    Needs the ``api.add_serviceaccount`` permission. Give it roles (memberships, shares) like any
    user; its keys never do more than those roles allow. Records ``ADMIN_ADDED``.
    """
    if actor is None or not actor.is_active or not actor.has_perm("api.add_serviceaccount"):
        raise PermissionDenied("You may not create service accounts.")
    name = _clean_name(name)
    username = f"svc-{slugify(name)[:60]}"
    user_model = get_user_model()
    with transaction.atomic():
        if ServiceAccount.objects.filter(name=name).exists() or user_model.objects.filter(username=username).exists():
            raise ValidationError({"name": ["A service account or user with this name exists."]})
        user = user_model(username=username, email="")
        user.set_unusable_password()
        user.save()
        account = ServiceAccount.objects.create(
            user=user, name=name, description=(description or "")[:2000], created_by=actor
        )
        audit.record(
            action=audit.Action.ADMIN_ADDED,
            actor=actor,
            subject=user,
            target=account,
            context={"object": "service_account"},
        )
    return account


# ---------------------------------------------------------------------------------------------
# Signed requests: the nonce store
# ---------------------------------------------------------------------------------------------
def request_nonce_consume(*, api_key: ApiKey, nonce: str, now: datetime.datetime | None = None) -> bool:
    """Remember ``nonce`` for ``api_key``; ``False`` if it was seen inside the window (a replay).

    Works across processes and machines: the database store relies on a unique constraint (the
    insert is the check), the cache store on Redis's atomic ``SET NX`` (``cache.add``). Process
    memory would let a replay through on any other worker, so the default store, ``auto``, is
    Redis only when the API cache is Redis (one round trip instead of a committed INSERT) and the
    database otherwise.
    """
    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache

    now = now or timezone.now()
    store = conf.get("API_SIGNATURE_NONCE_STORE")
    cache = caches[conf.get("API_CACHE_ALIAS")]
    if store == "cache" or (store == "auto" and isinstance(cache, RedisCache)):
        return cache.add(f"api:nonce:{api_key.pk}:{nonce}", 1, timeout=nonce_retention_seconds() + 1)
    try:
        with transaction.atomic():
            RequestNonce.objects.create(api_key=api_key, nonce=nonce, seen_at=now)
    except IntegrityError:
        return False
    if random.randrange(NONCE_PURGE_ONE_IN) == 0:
        request_nonces_purge(now=now)
    return True


def nonce_retention_seconds() -> int:
    """How long a used nonce is kept: twice the window (a timestamp may be a window old or ahead),
    or ``API_SIGNATURE_NONCE_RETENTION_SECONDS`` if longer, so that a server clock stepped back
    (after running ahead) still finds the nonces of requests it accepted."""
    return max(2 * conf.get("API_SIGNATURE_MAX_SKEW_SECONDS"), conf.get("API_SIGNATURE_NONCE_RETENTION_SECONDS"))


def request_nonces_purge(*, now: datetime.datetime | None = None) -> int:
    """Delete nonces older than ``nonce_retention_seconds()``: they can no longer be replayed."""
    now = now or timezone.now()
    horizon = now - datetime.timedelta(seconds=nonce_retention_seconds())
    deleted, _ = RequestNonce.objects.filter(seen_at__lt=horizon).delete()
    return deleted


# ---------------------------------------------------------------------------------------------
# Deprecated endpoints
# ---------------------------------------------------------------------------------------------
def _caller_of(api_key: ApiKey | None, user, client_ip: str | None) -> str:
    if api_key is not None:
        return f"key:{api_key.pk}"
    if user is not None:
        return f"user:{user.pk}"
    return f"ip:{client_ip or 'unknown'}"


def _deprecated_calls_redis():
    """The API cache's Redis client and key maker when the API cache is Redis, else None."""
    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache

    cache = caches[conf.get("API_CACHE_ALIAS")]
    if not isinstance(cache, RedisCache):
        return None
    client = getattr(cache, "_api_deprecated_client", None)
    if client is None:
        client = cache._api_deprecated_client = cache._cache.get_client(write=True)
    return client, cache.make_and_validate_key


# Redis keys of the pending counts (hash: field → calls) and last call times (field → ISO time);
# the first call time of each field per day (HSETNX: 1 for the day's first call, which is audited).
_PENDING_COUNTS, _PENDING_LAST, _FIRST_SEEN = "api:deprecated:counts", "api:deprecated:last", "api:deprecated:first"
# Take the pending hashes aside under one batch name, atomically (a call after this counts in the next batch).
_TAKE_BATCH = """
for index = 1, 2 do
  if redis.call('EXISTS', KEYS[index]) == 1 then redis.call('RENAME', KEYS[index], KEYS[index + 2]) end
end
return 1
"""


def deprecated_call_record(*, endpoint: str, api_key: ApiKey | None, user, client_ip: str | None) -> int:
    """Count one call of a deprecated endpoint for its caller (key, else user, else IP) today.

    With the API cache on Redis (production): one pipelined round trip adds the call to a pending
    count in Redis, and ``deprecated_calls_flush`` (beat, every minute) adds the pending counts to
    the ``DeprecatedCall`` rows in one transaction. No row lock per call: before, every call of a
    key ran ``BEGIN; INSERT … ON CONFLICT DO UPDATE; COMMIT`` on one row (issue #17). Durability:
    the rows lag by at most a flush interval; pending counts live in Redis (lost only with Redis's
    own data). Without Redis (the embedded default): one statement, ``INSERT … ON CONFLICT DO
    UPDATE SET count = count + 1 … RETURNING count``, atomic under concurrency.

    The first call of a caller on a day also records ``DEPRECATED_ENDPOINT_CALLED`` (the count
    carries the rest), so owners can be told without an audit event per request. Returns the
    number of calls counted so far: today's count (database), or the pending count (Redis).
    """
    now = timezone.now()
    caller = _caller_of(api_key, user, client_ip)
    endpoint = endpoint[:200]
    redis_side = _deprecated_calls_redis()
    if redis_side is not None:
        client, key = redis_side
        day = now.date().isoformat()
        field = json.dumps(
            [caller, api_key.pk if api_key is not None else None, user.pk if user is not None else None, endpoint, day]
        )
        pipeline = client.pipeline(transaction=False)
        pipeline.hincrby(key(_PENDING_COUNTS), field, 1)
        pipeline.hset(key(_PENDING_LAST), field, now.isoformat())
        pipeline.hsetnx(key(f"{_FIRST_SEEN}:{day}"), field, now.isoformat())
        pipeline.expire(key(f"{_FIRST_SEEN}:{day}"), 3 * 24 * 3600)
        count, _, first, _ = pipeline.execute()
        if first:
            _deprecated_call_audit(endpoint=endpoint, api_key=api_key, user=user)
        return int(count)
    with transaction.atomic():
        count = _deprecated_calls_add(
            caller=caller,
            api_key_id=api_key.pk if api_key is not None else None,
            user_id=user.pk if user is not None else None,
            endpoint=endpoint,
            day=now.date(),
            calls=1,
            first_at=now,
            last_at=now,
        )
        if count == 1:
            _deprecated_call_audit(endpoint=endpoint, api_key=api_key, user=user)
    return count


def _deprecated_call_audit(*, endpoint: str, api_key: ApiKey | None, user) -> None:
    audit.record(
        action=audit.Action.DEPRECATED_ENDPOINT_CALLED,
        actor=user,
        target=api_key,
        api_key_id=api_key.prefix if api_key is not None else None,
        context={"endpoint": endpoint},
    )


def _deprecated_calls_add(
    *, caller: str, api_key_id, user_id, endpoint: str, day, calls: int, first_at, last_at
) -> int:
    """Add ``calls`` to one caller's row of the day (created if new); the count after it."""
    table = connection.ops.quote_name(DeprecatedCall._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            # The table name comes from the model; every value is a bound parameter.
            f"INSERT INTO {table} (caller, api_key_id, user_id, endpoint, day, count, first_at, last_at) "  # noqa: S608
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            f"ON CONFLICT (caller, endpoint, day) DO UPDATE SET count = {table}.count + EXCLUDED.count, "
            "last_at = EXCLUDED.last_at RETURNING count",
            [
                caller,
                api_key_id,
                user_id,
                endpoint,
                connection.ops.adapt_datefield_value(day),
                calls,
                connection.ops.adapt_datetimefield_value(first_at),
                connection.ops.adapt_datetimefield_value(last_at),
            ],
        )
        return cursor.fetchone()[0]


def deprecated_calls_flush() -> int:
    """Add the counts pending in Redis to the ``DeprecatedCall`` rows; the number of calls added.

    The pending hashes are renamed aside atomically (calls after that go to the next batch), added
    in one transaction, then deleted. A batch whose flush failed (database down, process killed)
    keeps its name and is added by the next flush: no count is lost. A process killed between the
    commit and the delete would add that batch twice (an over-count, never an under-count).
    Without Redis there is nothing to flush. The beat task ``api.deprecated_calls_flush``.
    """
    redis_side = _deprecated_calls_redis()
    if redis_side is None:
        return 0
    client, key = redis_side
    # One flush at a time (two overlapping runs would both add a leftover batch); the lock expires
    # by itself if its holder dies.
    lock = client.lock(key("api:deprecated:flush-lock"), timeout=300, blocking=False)
    if not lock.acquire():
        return 0
    try:
        return _deprecated_calls_flush_batches(client, key)
    finally:
        # Expired meanwhile (a flush longer than the timeout): another flush may hold it now.
        with contextlib.suppress(LockError):
            lock.release()


def _deprecated_calls_flush_batches(client, key) -> int:
    batch = secrets.token_hex(8)
    client.eval(
        _TAKE_BATCH,
        4,
        key(_PENDING_COUNTS),
        key(_PENDING_LAST),
        key(f"{_PENDING_COUNTS}:batch:{batch}"),
        key(f"{_PENDING_LAST}:batch:{batch}"),
    )
    added = 0
    for name in sorted(client.scan_iter(match=key(f"{_PENDING_COUNTS}:batch:*"), count=100)):
        counts_key = name.decode() if isinstance(name, bytes) else name
        last_key = counts_key.replace(key(_PENDING_COUNTS), key(_PENDING_LAST), 1)
        counts = client.hgetall(counts_key)
        lasts = client.hgetall(last_key)
        with transaction.atomic():
            for field, calls in counts.items():
                caller, api_key_id, user_id, endpoint, day = json.loads(field)
                first = client.hget(key(f"{_FIRST_SEEN}:{day}"), field)
                last = lasts.get(field)
                last_at = datetime.datetime.fromisoformat(last.decode()) if last else timezone.now()
                first_at = datetime.datetime.fromisoformat(first.decode()) if first else last_at
                _deprecated_calls_add(
                    caller=caller,
                    api_key_id=api_key_id,
                    user_id=user_id,
                    endpoint=endpoint,
                    day=datetime.date.fromisoformat(day),
                    calls=int(calls),
                    first_at=first_at,
                    last_at=last_at,
                )
                added += int(calls)
        client.delete(counts_key, last_key)
    return added

"""Lockout and MFA throttling: our own counters, not django-axes (NIST SP 800-63B §5.2.2).

Password failures are counted per account (``address = ""``) and per (account, client IP). An
attempt is reserved by one conditional ``UPDATE ... RETURNING`` *before* the password is hashed,
so at most ``limit`` attempts are evaluated whatever the concurrency; locks last the growing
``ACCOUNTS_LOCKOUT_COOLOFFS``. MFA codes have their own per-account counter with a bounded
delay (RFC 4226 §7.3), its row held ``SELECT ... FOR UPDATE`` while a code is checked.
Why not django-axes, and the whole model: docs/decisions/lockout-own-counters.md.
"""

from __future__ import annotations

import dataclasses
import datetime

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts import conf
from accounts.models.lockout import ACCOUNT_SCOPE, FailureCounter

PASSWORD = FailureCounter.Kind.PASSWORD
MFA = FailureCounter.Kind.MFA
UNKNOWN_ADDRESS = "unknown"


@dataclasses.dataclass(frozen=True)
class Lock:
    """A lock that was just set: which scope, until when, after how many failures."""

    scope: str  # "account" or "address"
    until: datetime.datetime
    failures: int


def _lock_order(items):
    """Counters are always locked per-IP first, account last (reverse order of ``address``)."""
    return sorted(items, key=lambda item: item[0] if isinstance(item, tuple) else item, reverse=True)


def _address_key(client_ip: str | None) -> str:
    return client_ip or UNKNOWN_ADDRESS


def cooloff_for(lock_count: int) -> datetime.timedelta:
    """The cool-off of the lock that follows ``lock_count`` earlier ones."""
    schedule = conf.get("ACCOUNTS_LOCKOUT_COOLOFFS")
    return datetime.timedelta(seconds=schedule[min(lock_count, len(schedule) - 1)])


def _password_scopes(username: str, client_ip: str | None) -> dict[str, int]:
    return {
        ACCOUNT_SCOPE: conf.get("ACCOUNTS_LOCKOUT_ACCOUNT_FAILURE_LIMIT"),
        _address_key(client_ip): conf.get("ACCOUNTS_LOCKOUT_ADDRESS_FAILURE_LIMIT"),
    }


def _unlocked(now: datetime.datetime) -> Q:
    return Q(locked_until__isnull=True) | Q(locked_until__lte=now)


@dataclasses.dataclass(frozen=True)
class Reservation:
    """The outcome of ``password_attempt_reserve``.

    ``refused_until``: the attempt was refused (locked); try again then. Otherwise the attempt
    is counted, and ``reached`` names the counters (addresses) that this attempt brought to
    their limit: if the password is wrong, those are locked.
    """

    refused_until: datetime.datetime | None = None
    reached: tuple[str, ...] = ()


def _increment_sql() -> str:
    table = FailureCounter._meta.db_table
    return (
        f"UPDATE {table} SET "  # noqa: S608 - table name from the model, every value a parameter
        "failure_count = CASE WHEN last_failure_at < %s THEN 1 ELSE failure_count + 1 END, "
        "lock_count = CASE WHEN last_failure_at < %s THEN 0 ELSE lock_count END, "
        "last_failure_at = %s "
        "WHERE kind = %s AND username = %s AND address = %s "
        "AND (failure_count < %s OR last_failure_at < %s) "
        "AND (locked_until IS NULL OR locked_until <= %s) "
        "RETURNING failure_count"
    )


def password_attempt_reserve(*, username: str, client_ip: str | None) -> Reservation:
    """Count a password attempt *before* it is checked; refuse it if a counter is locked or full.

    One conditional ``UPDATE ... RETURNING`` per counter (the account+IP one first, then the
    account's: always in that order) increments it only if it is neither locked nor at its
    limit. The per-IP counter, where locks usually are, is tried first, so a refused client
    costs that one statement and a SELECT for the retry time, with no password hashing. If the
    per-IP counter was incremented but the account counter refuses, the increment is taken
    back. Each counter only ever admits ``limit`` attempts, whatever the concurrency (the
    PostgreSQL test fires 50 at once). The success path resets the counts
    (``password_attempt_succeeded``). ``username`` must be normalised.
    Permission: none (called for anonymous login attempts).
    """
    now = timezone.now()
    scopes = _lock_order(_password_scopes(username, client_ip).items())
    adapt = connection.ops.adapt_datetimefield_value
    stale_before, at_now = adapt(now - conf.seconds("ACCOUNTS_LOCKOUT_RESET_AFTER")), adapt(now)
    sql = _increment_sql()
    for _attempt in range(2):
        reached, taken = [], []
        with connection.cursor() as cursor:
            for address, limit in scopes:
                cursor.execute(
                    sql, [stale_before, stale_before, at_now, PASSWORD, username, address, limit, stale_before, at_now]
                )
                row = cursor.fetchone()
                if row is None:
                    break
                taken.append(address)
                if row[0] >= limit:
                    reached.append(address)
            else:
                return Reservation(reached=tuple(reached))
        counters = FailureCounter.objects.filter(kind=PASSWORD, username=username)
        if taken:
            counters.filter(address__in=taken, failure_count__gt=0).update(failure_count=F("failure_count") - 1)
        scoped = counters.filter(address__in=[address for address, _ in scopes])
        existing = {row.address: row for row in scoped}
        missing = [address for address, _ in scopes if address not in existing]
        if not missing:
            return Reservation(refused_until=_retry_time(existing.values(), now))
        try:
            with transaction.atomic():
                FailureCounter.objects.bulk_create(
                    [FailureCounter(kind=PASSWORD, username=username, address=address) for address in missing],
                    ignore_conflicts=True,
                )
        except IntegrityError:  # pragma: no cover - ignore_conflicts covers both databases
            pass
    return Reservation(refused_until=_retry_time(scoped.all(), now))


def _retry_time(rows, now: datetime.datetime) -> datetime.datetime:
    """When a refused client may try again: the latest active lock, or shortly if one is being set."""
    locks = [row.locked_until for row in rows if row.locked_until and row.locked_until > now]
    if locks:
        return max(locks)
    # A concurrent attempt has reached the limit and is about to set the lock.
    return now + cooloff_for(0)


def password_attempt_failed(*, username: str, client_ip: str | None, reservation: Reservation) -> list[Lock]:
    """After a wrong password (already counted): lock the counters this attempt brought to their limit.

    Returns the locks set now (usually none, and then without a query). Call it inside the
    transaction that records the failure (one commit for both). Permission: none.
    """
    if not reservation.reached:
        return []
    now = timezone.now()
    locks = []
    with transaction.atomic(savepoint=False):
        for row in (
            FailureCounter.objects.select_for_update()
            .filter(_unlocked(now), kind=PASSWORD, username=username, address__in=list(reservation.reached))
            .order_by("-address")  # the reservation's lock order
        ):
            locks.append(_lock(row, now))
    return locks


def _lock(row: FailureCounter, now: datetime.datetime) -> Lock:
    until = now + cooloff_for(row.lock_count)
    failures = row.failure_count
    FailureCounter.objects.filter(pk=row.pk).update(
        locked_until=until, lock_count=F("lock_count") + 1, failure_count=0, last_failure_at=now
    )
    return Lock(scope="account" if row.address == ACCOUNT_SCOPE else "address", until=until, failures=failures)


def password_attempt_succeeded(*, username: str, client_ip: str | None) -> None:
    """After a right password: reset the account counter and this IP's counter (NIST: reset on success).

    Other IPs' counters and locks are left alone: a success from one address never clears the
    lock an attacker earned from another. Permission: none.
    """
    for address in _lock_order({ACCOUNT_SCOPE, _address_key(client_ip)}):  # the reservation's order
        FailureCounter.objects.filter(kind=PASSWORD, username=username, address=address).update(
            failure_count=0, lock_count=0, last_failure_at=None
        )


# --- MFA ---------------------------------------------------------------------------------------


def mfa_delay(failure_count: int) -> datetime.timedelta:
    """The wait after ``failure_count`` consecutive wrong codes: 0, 1, 2, 4... seconds, bounded."""
    if failure_count <= 0:
        return datetime.timedelta(0)
    base = conf.get("ACCOUNTS_MFA_THROTTLE_BASE")
    bound = conf.get("ACCOUNTS_MFA_THROTTLE_MAX")
    return datetime.timedelta(seconds=min(base * 2 ** min(failure_count - 1, 32), bound))


@dataclasses.dataclass
class MfaGate:
    """The MFA counter row of an account, locked for the duration of one code check."""

    row: FailureCounter
    now: datetime.datetime

    @property
    def retry_at(self) -> datetime.datetime | None:
        """When a code may be tried again, or ``None`` if now."""
        if self.row.locked_until and self.row.locked_until > self.now:
            return self.row.locked_until
        if self.row.last_failure_at is not None and self.row.failure_count:
            if self.row.last_failure_at + conf.seconds("ACCOUNTS_LOCKOUT_RESET_AFTER") < self.now:
                return None
            next_try = self.row.last_failure_at + mfa_delay(self.row.failure_count)
            if next_try > self.now:
                return next_try
        return None

    @property
    def locked(self) -> bool:
        return bool(self.row.locked_until and self.row.locked_until > self.now)

    def failed(self) -> Lock | None:
        """Count a wrong code; lock the account's MFA step at the limit."""
        row = self.row
        if row.last_failure_at and row.last_failure_at + conf.seconds("ACCOUNTS_LOCKOUT_RESET_AFTER") < self.now:
            row.failure_count, row.lock_count = 0, 0
        row.failure_count += 1
        row.last_failure_at = self.now
        if row.failure_count >= conf.get("ACCOUNTS_MFA_FAILURE_LIMIT"):
            lock = Lock(scope="account", until=self.now + cooloff_for(row.lock_count), failures=row.failure_count)
            row.locked_until, row.lock_count, row.failure_count = lock.until, row.lock_count + 1, 0
            row.save()
            return lock
        row.save()
        return None

    def succeeded(self) -> None:
        if self.row.failure_count or self.row.lock_count or self.row.last_failure_at:
            self.row.failure_count, self.row.lock_count, self.row.last_failure_at = 0, 0, None
            self.row.save()


def mfa_gate_open(*, username: str) -> MfaGate:
    """Lock and return the MFA counter of an account; call inside ``transaction.atomic()``."""
    FailureCounter.objects.bulk_create(
        [FailureCounter(kind=MFA, username=username, address=ACCOUNT_SCOPE)], ignore_conflicts=True
    )
    row = FailureCounter.objects.select_for_update().get(kind=MFA, username=username, address=ACCOUNT_SCOPE)
    return MfaGate(row=row, now=timezone.now())


def counters_clear(*, username: str) -> int:
    """Delete every counter of an account (unlock); return how many locks were active."""
    now = timezone.now()
    rows = FailureCounter.objects.filter(username=username)
    active = rows.filter(locked_until__gt=now).count()
    rows.delete()
    return active

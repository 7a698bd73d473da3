"""On PostgreSQL, refuse UPDATE and DELETE of audit events in the database itself.

The model already refuses them through the ORM; this covers raw SQL, other clients and bugs.
Allowed, and nothing else:

* UPDATE that seals an unsealed row: ``sequence``/``hash`` go from NULL to a value,
  ``previous_hash`` is set, every other column is unchanged (compared as jsonb, so a column
  added later is covered without changing this trigger);
* DELETE inside a transaction where the retention purge ran
  ``SELECT set_config('audit.allow_purge', 'on', true)`` (transaction-local).

This guards against accidents and casual edits. A database superuser can drop the trigger:
that attacker is caught by the keyed chain and the published head, not by this.
TRUNCATE is not blocked because Django's test flush uses it; grant the application role no
TRUNCATE privilege in production (truncation is detected by audit_verify in any case).
"""

from django.db import migrations

FUNCTION_SQL = """
CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF current_setting('audit.allow_purge', true) = 'on' THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'audit events are append-only: DELETE refused (only the retention purge may delete)'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF OLD.sequence IS NULL AND OLD.hash IS NULL
       AND NEW.sequence IS NOT NULL AND NEW.hash IS NOT NULL AND NEW.previous_hash IS NOT NULL
       AND (to_jsonb(NEW) - 'sequence' - 'hash' - 'previous_hash')
           = (to_jsonb(OLD) - 'sequence' - 'hash' - 'previous_hash') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit events are append-only: UPDATE refused (only sealing an unsealed event is allowed)'
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""

TRIGGER_SQL = """
DROP TRIGGER IF EXISTS audit_event_append_only ON audit_auditevent;
CREATE TRIGGER audit_event_append_only
    BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();
"""

REVERSE_SQL = """
DROP TRIGGER IF EXISTS audit_event_append_only ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_event_append_only();
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTION_SQL)
    schema_editor.execute(TRIGGER_SQL)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(REVERSE_SQL)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]

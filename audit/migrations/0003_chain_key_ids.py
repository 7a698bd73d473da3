"""Key ids beside every MAC of the chain, and the append-only trigger widened to the sealer's new column.

The audit chain's MACs now come from the encryption key ring (purpose ``audit_chain``), and each
is stored with the id of the key that made it (``audit.chain``). Existing rows keep NULL: they
were made with the legacy key (``AUDIT_CHAIN_KEY``), and NULL names it, so nothing is rewritten.

The sealer now also writes ``chain_key_id`` when it seals an event, so on PostgreSQL the trigger
of migration 0002 allows that column to change in the one update it allows (the sealing of an
unsealed row), and requires it to name a key-ring key (not NULL, not ``legacy``): a seal made with
the legacy key after this migration is refused. ``PREVIOUS_FUNCTION_SQL`` is 0002's function,
copied so that this migration stays frozen whatever later happens to 0002.
"""

from django.db import migrations, models

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
    IF OLD.sequence IS NULL AND OLD.hash IS NULL AND OLD.chain_key_id IS NULL
       AND NEW.sequence IS NOT NULL AND NEW.hash IS NOT NULL AND NEW.previous_hash IS NOT NULL
       AND NEW.chain_key_id IS NOT NULL AND NEW.chain_key_id <> 'legacy'
       AND (to_jsonb(NEW) - 'sequence' - 'hash' - 'previous_hash' - 'chain_key_id')
           = (to_jsonb(OLD) - 'sequence' - 'hash' - 'previous_hash' - 'chain_key_id') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit events are append-only: UPDATE refused (only sealing an unsealed event is allowed)'
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""

PREVIOUS_FUNCTION_SQL = """
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


def widen_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTION_SQL)


def narrow_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PREVIOUS_FUNCTION_SQL)


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only_trigger")]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="content_key_id",
            field=models.CharField(blank=True, editable=False, max_length=64, null=True),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="chain_key_id",
            field=models.CharField(blank=True, editable=False, max_length=64, null=True),
        ),
        migrations.AddField(
            model_name="audittombstone",
            name="key_id",
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
        migrations.AddField(
            model_name="chainhead",
            name="anchor_key_id",
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
        # After the columns exist: the function names chain_key_id.
        migrations.RunPython(widen_trigger, narrow_trigger, elidable=False),
    ]

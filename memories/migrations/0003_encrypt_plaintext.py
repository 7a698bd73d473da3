"""Encrypt the memories stored before 0002 made ``content`` and ``metadata`` encrypted columns.

0002 changed the fields but not the rows: a memory written before it stayed plaintext at rest and
failed to read ("not an encrypted value"). This encrypts such rows in place with the primary
field key (``encryption.services.encryption_plaintext_encrypt``, which ``manage.py
encrypt_plaintext`` also runs: resumable, so an interrupted migrate is finished by either).
"""

from django.db import migrations


def encrypt_plaintext(apps, schema_editor):
    from encryption.services import encryption_plaintext_encrypt

    Memory = apps.get_model("memories", "Memory")
    if not Memory._base_manager.using(schema_editor.connection.alias).exists():
        return  # a new install: no key is needed for nothing
    encryption_plaintext_encrypt(models=[Memory], using=schema_editor.connection.alias, record_event=False)


class Migration(migrations.Migration):
    # Batches commit as they go, so a large table is not one long transaction.
    atomic = False

    dependencies = [
        ("memories", "0002_encrypt_memory_content"),
    ]

    operations = [
        migrations.RunPython(encrypt_plaintext, migrations.RunPython.noop, elidable=False),
    ]

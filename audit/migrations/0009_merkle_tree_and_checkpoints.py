"""The Merkle tree over sealed events and its signed checkpoints (audit/merkle.py, audit/checkpoints.py).

An existing chain's events stay protected by the HMAC chain and the published heads; the tree
begins with the first event sealed after this migration (``tree_base`` = the head's sequence).
"""

from django.db import migrations, models


def start_tree_at_the_head(apps, schema_editor):
    ChainHead = apps.get_model("audit", "ChainHead")
    for head in ChainHead.objects.all():
        ChainHead.objects.filter(pk=head.pk).update(tree_base=head.sequence, tree_size=0, tree_frontier="")


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0008_merged_actions"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditCheckpoint",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("tree_size", models.BigIntegerField(unique=True)),
                ("tree_base", models.BigIntegerField(default=0)),
                ("root_hash", models.CharField(max_length=64)),
                ("frontier", models.TextField(blank=True, default="")),
                ("note", models.TextField()),
                ("key_id", models.CharField(max_length=64)),
                ("created_at", models.DateTimeField()),
            ],
            options={
                "verbose_name": "audit checkpoint",
                "ordering": ["-tree_size"],
            },
        ),
        migrations.AddField(
            model_name="chainhead",
            name="tree_base",
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="chainhead",
            name="tree_frontier",
            field=models.TextField(blank=True, default=""),
        ),
        migrations.AddField(
            model_name="chainhead",
            name="tree_size",
            field=models.BigIntegerField(default=0),
        ),
        migrations.RunPython(start_tree_at_the_head, migrations.RunPython.noop, elidable=False),
    ]

"""The platform's memory shape, without encryption (memories/models.py is the original)."""

from django.db import models


class Owner(models.Model):
    username = models.CharField(max_length=150, unique=True)

    is_authenticated = True

    def __str__(self) -> str:
        return self.username


class Key(models.Model):
    """An API key: the SHA-256 of the key sent in the header, and its owner."""

    digest = models.CharField(max_length=64, unique=True)
    owner = models.ForeignKey(Owner, on_delete=models.CASCADE)

    def __str__(self) -> str:
        return f"key {self.pk}"


class Context(models.Model):
    name = models.CharField(max_length=200)
    owner = models.ForeignKey(Owner, on_delete=models.PROTECT)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Memory(models.Model):
    context = models.ForeignKey(Context, on_delete=models.CASCADE, related_name="memories")
    author = models.ForeignKey(Owner, null=True, on_delete=models.SET_NULL)
    kind = models.CharField(max_length=20, default="note")
    source = models.CharField(max_length=100, blank=True, default="")
    content = models.TextField()
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["context", "-created_at", "-id"], name="baseline_mem_ctx_created_idx")]

    def __str__(self) -> str:
        return f"memory {self.pk}"


class MemoryTag(models.Model):
    memory = models.ForeignKey(Memory, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=50, db_index=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["memory", "name"], name="baseline_tag_unique_per_memory")]

    def __str__(self) -> str:
        return self.name

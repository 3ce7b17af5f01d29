from django.db import models

from decodelab.common.models import BaseModel


class LanguageModel(BaseModel):
    """A model some worker can serve, as that worker last reported it."""

    name = models.CharField(max_length=64, unique=True)
    display_name = models.CharField(max_length=128)
    tokenizer_family = models.CharField(max_length=64, help_text="Models of one family can draft for each other.")
    chat_template = models.BooleanField(default=False)
    installed = models.BooleanField(default=False)
    prepared = models.BooleanField(default=False)
    size_bytes = models.BigIntegerField(null=True, blank=True, help_text="Prepared weights on disk.")
    download_mb = models.PositiveIntegerField(null=True, blank=True)
    dtype = models.CharField(max_length=16, blank=True)
    library_versions = models.JSONField(default=dict, blank=True, help_text="torch, transformers... on the worker.")
    reported_by = models.CharField(max_length=200, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

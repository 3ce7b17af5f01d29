from django.contrib.auth.models import AbstractUser
from django.db import models


class Role(models.TextChoices):
    RESEARCHER = "researcher", "Researcher"
    ANNOTATOR = "annotator", "Annotator"


class User(AbstractUser):
    """A researcher runs comparisons; an annotator only ever sees blind rating pages."""

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.RESEARCHER)

    @property
    def is_researcher(self) -> bool:
        return self.role == Role.RESEARCHER

    @property
    def is_annotator(self) -> bool:
        return self.role == Role.ANNOTATOR

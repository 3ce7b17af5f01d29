from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "decodelab.runs"
    label = "runs"

from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "decodelab.experiments"
    label = "experiments"

from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "decodelab.common"
    label = "common"

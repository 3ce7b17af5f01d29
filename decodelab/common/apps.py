from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "decodelab.common"
    label = "common"

    def ready(self) -> None:
        from decodelab.common import checks  # noqa: F401  (registers the system checks)

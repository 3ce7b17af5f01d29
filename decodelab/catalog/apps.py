from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "decodelab.catalog"
    label = "catalog"

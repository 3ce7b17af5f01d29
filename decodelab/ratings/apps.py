from django.apps import AppConfig


class RatingsConfig(AppConfig):
    name = "decodelab.ratings"
    label = "ratings"

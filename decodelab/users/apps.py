from django.apps import AppConfig


class UsersConfig(AppConfig):
    name = "decodelab.users"
    label = "users"

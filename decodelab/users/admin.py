from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from decodelab.users.models import User


@admin.register(User)
class DecodeLabUserAdmin(UserAdmin):
    fieldsets = (*UserAdmin.fieldsets, ("DecodeLab", {"fields": ("role",)}))
    list_display = ("username", "role", "is_staff", "last_login")

from rest_framework.permissions import BasePermission


class IsResearcher(BasePermission):
    """Researcher endpoints; annotators get 403 here and only ever see rating endpoints."""

    message = "This endpoint is for researchers."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and getattr(user, "is_researcher", False))

from django.urls import path

from decodelab.runs import views

app_name = "runs"
urlpatterns = [
    path("", views.comparison_list, name="comparison_list"),
    path("new/", views.comparison_new, name="comparison_new"),
    path("new/preset-row/", views.preset_row, name="preset_row"),
    path("<uuid:comparison_id>/", views.comparison_detail, name="comparison_detail"),
    path("<uuid:comparison_id>/cancel/", views.comparison_cancel, name="comparison_cancel"),
]

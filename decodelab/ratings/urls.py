"""Browser pages of the ratings app, mounted at /rate/.

Annotator pages carry only opaque ids (t/<task>/, i/<item>/); researcher pages live under sessions/.
"""

from django.urls import path

from decodelab.ratings.views import rating, sessions

app_name = "ratings"
urlpatterns = [
    # annotators (blind)
    path("", rating.queue, name="queue"),
    path("t/<str:task_id>/", rating.task, name="task"),
    path("i/<str:item_id>/", rating.item_detail, name="item"),
    path("i/<str:item_id>/vote/", rating.vote, name="vote"),
    path("i/<str:item_id>/skip/", rating.skip, name="skip"),
    # researchers
    path("sessions/", sessions.session_list, name="session_list"),
    path("sessions/new/", sessions.session_new, name="session_new"),
    path("sessions/<uuid:session_id>/", sessions.session_detail, name="session_detail"),
    path("sessions/<uuid:session_id>/status/", sessions.session_status, name="session_status"),
    path("sessions/<uuid:session_id>/rankings/", sessions.session_rankings, name="session_rankings"),
]

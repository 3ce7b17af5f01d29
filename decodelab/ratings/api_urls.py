"""REST endpoints of the ratings app, mounted under /api/v1/.

rating-sessions/...: researchers (their own sessions). rating/...: annotators (their own queue, blind,
opaque ids only).
"""

from django.urls import path

from decodelab.ratings import apis

urlpatterns = [
    path("rating-sessions/", apis.SessionListCreateApi.as_view(), name="api-rating-sessions"),
    path("rating-sessions/<uuid:session_id>/", apis.SessionDetailApi.as_view(), name="api-rating-session"),
    path(
        "rating-sessions/<uuid:session_id>/status/",
        apis.SessionStatusApi.as_view(),
        name="api-rating-session-status",
    ),
    path(
        "rating-sessions/<uuid:session_id>/rankings/",
        apis.SessionRankingsApi.as_view(),
        name="api-rating-session-rankings",
    ),
    path(
        "rating-sessions/<uuid:session_id>/export/votes.jsonl",
        apis.VotesJsonlExportApi.as_view(),
        name="api-rating-export-votes-jsonl",
    ),
    path(
        "rating-sessions/<uuid:session_id>/export/votes.csv",
        apis.VotesCsvExportApi.as_view(),
        name="api-rating-export-votes-csv",
    ),
    path(
        "rating-sessions/<uuid:session_id>/export/preferences.jsonl",
        apis.PreferencesExportApi.as_view(),
        name="api-rating-export-preferences",
    ),
    path("rating/tasks/", apis.TaskListApi.as_view(), name="api-rating-tasks"),
    path("rating/tasks/<str:task_id>/next/", apis.TaskNextApi.as_view(), name="api-rating-task-next"),
    path("rating/items/<str:item_id>/", apis.ItemDetailApi.as_view(), name="api-rating-item"),
    path("rating/items/<str:item_id>/vote/", apis.ItemVoteApi.as_view(), name="api-rating-item-vote"),
    path("rating/items/<str:item_id>/skip/", apis.ItemSkipApi.as_view(), name="api-rating-item-skip"),
]

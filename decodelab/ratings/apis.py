"""REST API of rating sessions. Researcher endpoints (IsResearcher: annotators get 403, another
researcher's session is 404) and annotator endpoints (scoped to the caller's own queue: anyone
else's item is 404), which return only the blind allow-list of ``serializers.blind_item``."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from django.utils.text import slugify
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from decodelab.api.pagination import DefaultPagination
from decodelab.common.permissions import IsResearcher
from decodelab.ratings import analysis, exports, selectors, serializers, services, serving
from decodelab.ratings.sources import experiment_comparison_ids

CREATE_EXAMPLE = OpenApiExample(
    "pairwise, two annotators each",
    value={
        "name": "greedy vs sampling, pilot",
        "mode": "pairwise",
        "comparisons": ["3f0c1a52-6a8e-4f8e-9a43-0d6f3c1a2b7e"],
        "annotators": ["ann", "bob", "cy"],
        "overlap": 2,
        "instructions": "Which answer is more helpful? Press 1 or 2, 3 for a tie, 4 if both are bad.",
        "gold": [{"prompt": "2 + 2 =", "outputs": ["4", "5"], "expected": 0}],
    },
    request_only=True,
)


class SessionListCreateApi(APIView):
    permission_classes = [IsResearcher]
    pagination_class = DefaultPagination  # the schema documents the paginated list

    @extend_schema(responses=serializers.RatingSessionSerializer(many=True), operation_id="rating_sessions_list")
    def get(self, request):
        paginator = DefaultPagination()
        page = paginator.paginate_queryset(selectors.session_list(user=request.user), request, view=self)
        return paginator.get_paginated_response(serializers.RatingSessionSerializer(page, many=True).data)

    @extend_schema(
        request=serializers.RatingSessionCreateInput,
        responses={201: serializers.RatingSessionSerializer},
        examples=[CREATE_EXAMPLE],
        operation_id="rating_sessions_create",
    )
    def post(self, request):
        data = serializers.RatingSessionCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        experiment = fields.pop("experiment", None)
        comparison_ids = list(fields.pop("comparisons"))
        if experiment:
            comparison_ids += experiment_comparison_ids(user=request.user, experiment_id=experiment)
        session = services.session_create(
            owner=request.user, comparison_ids=comparison_ids, experiment_id=experiment, **fields
        )
        return Response(serializers.RatingSessionSerializer(session).data, status=status.HTTP_201_CREATED)


class SessionDetailApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(responses=serializers.RatingSessionSerializer, operation_id="rating_sessions_retrieve")
    def get(self, request, session_id):
        session = selectors.session_get(user=request.user, session_id=session_id)
        services.session_items_sync(session=session)
        return Response(serializers.RatingSessionSerializer(session).data)


class SessionStatusApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(
        request=serializers.RatingSessionStatusInput,
        responses=serializers.RatingSessionSerializer,
        operation_id="rating_sessions_set_status",
        description="Close a session (no more votes) or reopen it.",
    )
    def post(self, request, session_id):
        session = selectors.session_get(user=request.user, session_id=session_id)
        data = serializers.RatingSessionStatusInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.session_set_status(session=session, status=data.validated_data["status"])
        return Response(serializers.RatingSessionSerializer(session).data)


class SessionRankingsApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(
        responses=serializers.RatingRankingsSerializer,
        operation_id="rating_sessions_rankings",
        description="Bradley-Terry (Davidson ties) with bootstrap 95% CIs, length-controlled BT, Elo, "
        "win/tie/loss matrix, agreement, position bias, gold accuracy, Likert means, quality vs cost. "
        "Definitions: README, 'Blind rating sessions and rankings'.",
    )
    def get(self, request, session_id):
        session = selectors.session_get(user=request.user, session_id=session_id)
        return Response(analysis.session_report(session=session))


def _stream(session, chunks, suffix: str, content_type: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, content_type=content_type)
    name = slugify(session.name) or "session"
    response["Content-Disposition"] = f'attachment; filename="rating-{name}-{suffix}"'
    return response


class VotesJsonlExportApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(
        responses={(200, "application/x-ndjson"): OpenApiTypes.STR},
        operation_id="rating_sessions_export_votes_jsonl",
        description="One JSON object per vote: shown order (left/right config hashes and labels), "
        "annotator, choice or scores or ranking, reason, shown_at, created_at.",
    )
    def get(self, request, session_id):
        session = selectors.session_get(user=request.user, session_id=session_id)
        return _stream(session, exports.votes_jsonl(session), "votes.jsonl", "application/x-ndjson")


class VotesCsvExportApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(
        responses={(200, "text/csv"): OpenApiTypes.STR},
        operation_id="rating_sessions_export_votes_csv",
        description=f"Columns: {', '.join(exports.VOTE_COLUMNS)}.",
    )
    def get(self, request, session_id):
        session = selectors.session_get(user=request.user, session_id=session_id)
        return _stream(session, exports.votes_csv(session), "votes.csv", "text/csv; charset=utf-8")


class PreferencesExportApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(
        responses={(200, "application/x-ndjson"): OpenApiTypes.STR},
        operation_id="rating_sessions_export_preferences",
        description='DPO-style pairs, one per line: {"prompt", "chosen", "rejected", "provenance": {session, '
        "vote, annotator, chosen_config, rejected_config, ...}}. Decisive pairwise votes and the pairs a "
        "ranking implies; ties, both-bad and gold items are left out.",
    )
    def get(self, request, session_id):
        session = selectors.session_get(user=request.user, session_id=session_id)
        return _stream(session, exports.preferences_jsonl(session), "preferences.jsonl", "application/x-ndjson")


# --- annotator endpoints: blind ---


def _progress(session, user) -> dict[str, int]:
    progress = selectors.annotator_progress(session=session, user=user)
    return {k: progress[k] for k in ("done", "skipped", "pending", "total")}


class TaskListApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=serializers.RatingTaskSerializer(many=True), operation_id="rating_tasks_list")
    def get(self, request):
        tasks = [
            {
                "id": s.public_id,
                "mode": s.mode,
                "instructions": s.instructions,
                "progress": _progress(s, request.user),
            }
            for s in selectors.annotator_sessions(user=request.user)
        ]
        return Response(serializers.RatingTaskSerializer(tasks, many=True).data)


class TaskNextApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        responses=serializers.NextRatingItemSerializer,
        operation_id="rating_tasks_next",
        description="Your current item (the same one until you answer or skip it), or item null when done.",
    )
    def get(self, request, task_id):
        session = selectors.annotator_session_get(user=request.user, public_id=task_id)
        assignment = serving.next_assignment(session=session, user=request.user)
        data = {
            "item": serializers.blind_item(assignment) if assignment else None,
            "progress": _progress(session, request.user),
        }
        return Response(serializers.NextRatingItemSerializer(data).data)


class ItemDetailApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=serializers.BlindItemSerializer, operation_id="rating_items_retrieve")
    def get(self, request, item_id):
        assignment = selectors.assignment_get(user=request.user, public_id=item_id)
        return Response(serializers.BlindItemSerializer(serializers.blind_item(assignment)).data)


class ItemVoteApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=serializers.RatingVoteInputSerializer,
        responses={
            201: serializers.RatingVoteResultSerializer,
            404: OpenApiResponse(description="Not an item of your queue."),
            409: OpenApiResponse(description="Already voted (a vote cannot be cast twice) or skipped."),
        },
        operation_id="rating_items_vote",
        examples=[
            OpenApiExample("pairwise", value={"choice": "left", "reason": "answers the question"}, request_only=True),
            OpenApiExample("likert", value={"scores": {"fluency": 4, "overall": 3}}, request_only=True),
        ],
    )
    def post(self, request, item_id):
        assignment = selectors.assignment_get(user=request.user, public_id=item_id)
        data = serializers.RatingVoteInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.vote_cast(assignment=assignment, **data.validated_data)
        assignment.refresh_from_db()
        result = {"item": assignment.public_id, "recorded": True, "reveal": serializers.reveal(assignment)}
        return Response(serializers.RatingVoteResultSerializer(result).data, status=status.HTTP_201_CREATED)


class ItemSkipApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=None,
        responses={200: serializers.BlindItemSerializer, 409: OpenApiResponse(description="Already answered.")},
        operation_id="rating_items_skip",
    )
    def post(self, request, item_id):
        assignment = selectors.assignment_get(user=request.user, public_id=item_id)
        services.assignment_skip(assignment=assignment)
        return Response(serializers.BlindItemSerializer(serializers.blind_item(assignment)).data)

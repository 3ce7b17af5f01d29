"""schemathesis against /api/schema/: every operation of the live WSGI app, with researcher A's
token, with the annotator's token (rating endpoints) and with no credentials.

For each operation, Hypothesis draws requests from the schema (schemathesis 4 ``as_strategy``):

- as researcher A: valid requests with generated path ids, valid requests whose path ids are
  A's real objects (so success answers are checked too), and invalid ("negative") requests;
- as the annotator: valid requests to the rating endpoints with the ids of their assignments;
- with no credentials: every operation must answer 401.

Checks on every answer: not a server error, the status code is documented, the content type is
documented, and the body conforms to the documented schema. The test collects every failing
operation before it fails, writes a summary to test-artifacts/security/schemathesis.txt and
asserts the request count.

Comparisons created here are dispatched after commit, which never happens inside the test's
transaction; the ``broker`` fixture (a real redis-server) is there for any service that
dispatches at once.
"""

from __future__ import annotations

import collections
import time
import uuid
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.security.urlwalk import KWARG_MODELS, object_ids
from tests.security.world import make_world, rating_session
from tests.support.servers import ROOT

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
POSITIVE_EXAMPLES = 15
REAL_ID_EXAMPLES = 15
NEGATIVE_EXAMPLES = 8
ANONYMOUS_EXAMPLES = 3
POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE


@pytest.fixture
def wsgi_app():
    # Django's test client does the same: a request's end must not close the connection that
    # holds the test's transaction.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def world(db, broker):
    world = make_world()
    world.ratings_note = rating_session(world, text="an output to rate")
    return world


@pytest.fixture
def api_schema(wsgi_app, world):
    return schemathesis.openapi.from_wsgi("/api/schema/", wsgi_app)


def real_ids(operation, world, *, annotator: bool = False) -> dict[str, Any] | None:
    """Path parameters naming real objects: A's, or for the rating endpoints the annotator's own
    assignment and session. None when some parameter has no object to name."""
    values: dict[str, Any] = {}
    for param in operation.path_parameters:
        name = param.name
        if annotator:
            from decodelab.ratings.models import Assignment

            mine = Assignment.objects.filter(annotator=world.annotator.user).select_related("item__session")
            first = mine.first()
            if first is None:
                return None
            values[name] = first.public_id if name == "item_id" else first.item.session.public_id
            continue
        label = KWARG_MODELS.get(name)
        base = name.removesuffix("_id").replace("_", "")
        if label is None:
            labels = [lab for lab in world.owned if lab.split(".")[1] == base]
            labels += [lab for lab in world.owned if lab.split(".")[1].endswith(base)]
            label = labels[0] if labels else None
        objs = world.owned.get(label or "", [])
        if not objs:
            return None
        ids = object_ids(objs[0])
        wants_uuid = (param.definition.get("schema") or {}).get("format") == "uuid"
        value = next((v for v in ids if isinstance(v, uuid.UUID) == wants_uuid), None)
        if value is None:
            return None
        values[name] = str(value)
    return values


class Run:
    def __init__(self) -> None:
        self.requests = 0
        self.examples: collections.Counter = collections.Counter()
        self.statuses: collections.Counter = collections.Counter()
        self.failures: list[str] = []
        self.no_negative: list[str] = []
        self.started = time.monotonic()

    def explore(
        self,
        operation,
        label: str,
        *,
        mode: GenerationMode,
        examples: int,
        headers: dict[str, str],
        path_parameters: dict[str, Any] | None = None,
        extra_check=None,
    ) -> None:
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

        @given(case=strategy)
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],  # no shrinking: the failure is reported as found
            suppress_health_check=list(HealthCheck),
        )
        def test(case) -> None:
            response = case.call(headers=headers)
            self.requests += 1
            self.examples[(operation.label, label)] += 1
            self.statuses[(label, response.status_code)] += 1
            if extra_check is not None:
                extra_check(response)
            case.validate_response(response, checks=CHECKS, headers=headers)

        try:
            test()
        except Unsatisfiable:
            # Nothing in the operation can be made invalid (no parameters, no body): no negative case.
            self.no_negative.append(operation.label)
        except (Exception, BaseExceptionGroup) as exc:  # every failing operation is collected, then reported
            lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
            keep = lines[:8] + [line for line in lines if line.startswith(("- ", "curl "))]
            self.failures.append(f"{operation.label} [{label}]: " + " | ".join(dict.fromkeys(keep))[:2000])


def test_every_operation_conforms_to_the_schema_and_enforces_auth(api_schema, world):
    run = Run()
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 7
    researcher = {"Authorization": f"Token {world.owner.token}"}
    annotator = {"Authorization": f"Token {world.annotator.token}"}
    real_covered = []

    def must_be_401(response) -> None:
        assert response.status_code == 401, f"unauthenticated call answered {response.status_code}"
        assert response.headers.get("www-authenticate") == ["Token"], response.headers

    for operation in operations:
        run.explore(
            operation,
            "anonymous",
            mode=POSITIVE,
            examples=ANONYMOUS_EXAMPLES,
            headers={},
            extra_check=must_be_401,
        )
        run.explore(operation, "researcher", mode=POSITIVE, examples=POSITIVE_EXAMPLES, headers=researcher)
        run.explore(operation, "researcher-negative", mode=NEGATIVE, examples=NEGATIVE_EXAMPLES, headers=researcher)
        if operation.path_parameters:
            is_rating = operation.path.startswith("/api/v1/rating/")
            ids = real_ids(operation, world, annotator=is_rating)
            if ids is not None:
                real_covered.append(operation.label)
                run.explore(
                    operation,
                    "annotator-own-ids" if is_rating else "researcher-own-ids",
                    mode=POSITIVE,
                    examples=REAL_ID_EXAMPLES,
                    headers=annotator if is_rating else researcher,
                    path_parameters=ids,
                )
        elif operation.path.startswith("/api/v1/rating/"):
            run.explore(operation, "annotator", mode=POSITIVE, examples=POSITIVE_EXAMPLES, headers=annotator)

    elapsed = time.monotonic() - run.started
    statuses = collections.defaultdict(dict)
    for (label, status), n in sorted(run.statuses.items()):
        statuses[label][status] = n
    report = "\n".join(
        [
            f"operations: {len(operations)}; requests: {run.requests}; {elapsed:.0f} s",
            f"with real ids: {len(real_covered)}: {', '.join(real_covered)}",
            f"ratings: {world.ratings_note}",
            f"no negative input possible: {', '.join(run.no_negative)}",
            "statuses per caller: " + "; ".join(f"{k}: {dict(v)}" for k, v in statuses.items()),
            f"failures: {len(run.failures)}",
            *run.failures,
        ]
    )
    print(report)
    out = ROOT / "test-artifacts" / "security"
    out.mkdir(parents=True, exist_ok=True)
    (out / "schemathesis.txt").write_text(report + "\n")
    assert not run.failures, f"{len(run.failures)} failing operations:\n" + "\n".join(run.failures)
    covered = {op for op, _label in run.examples}
    assert covered == {op.label for op in operations}
    assert run.requests >= 5 * len(operations)

"""Every URL pattern of the project, found from the root resolver (so endpoints that apps add
later are walked without changing the tests), and concrete URLs built for them."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.exceptions import Resolver404
from django.utils.regex_helper import normalize

# Pages anyone may open: the login and logout views, the API's own description (it holds no
# data), and the root redirect.
PUBLIC_ROUTES = {"", "login/", "logout/", "api/schema/", "api/docs/", "admin/login/", "admin/logout/"}
MAX_VALUES_PER_KWARG = 6  # A's ids tried per URL parameter (besides the ids that name nothing)
MAX_URLS_PER_PATTERN = 6
# Known URL parameter names and the model whose ids they take; other names are matched to models
# by name (experiment_id -> experiments.experiment), or get one id of each of A's models.
KWARG_MODELS = {"comparison_id": "runs.comparison", "run_id": "runs.run", "output_id": "runs.output"}
# Paths whose view is the rate-limited admin login (mounted before the admin's own URLs).
LOGIN_PATHS = ("/login/", "/admin/login/")


@dataclass(frozen=True)
class Endpoint:
    route: str  # readable, e.g. "comparisons/<uuid:comparison_id>/"
    name: str  # namespaced ("runs:comparison_detail"), "" when unnamed
    callback: Callable[..., Any]
    module: str  # the view's module: decides API/page and which app it belongs to
    levels: tuple[Any, ...] = field(repr=False)  # the pattern objects from the root down

    @property
    def kwargs(self) -> list[str]:
        names: list[str] = []
        for level in self.levels:
            names += [n for n in level.regex.groupindex if n not in names]
        return names

    @property
    def is_api(self) -> bool:
        return self.route.startswith("api/v1/")

    @property
    def is_admin(self) -> bool:
        return self.route.startswith("admin/")

    @property
    def is_public(self) -> bool:
        return self.route in PUBLIC_ROUTES

    @property
    def researcher_only(self) -> bool:
        """Declared for researchers only: DRF's IsResearcher, or the researcher_required decorator."""
        from decodelab.common.permissions import IsResearcher

        view_class = getattr(self.callback, "view_class", None) or getattr(self.callback, "cls", None)
        permissions = getattr(view_class, "permission_classes", None) or []
        return IsResearcher in permissions or bool(getattr(self.callback, "researcher_only", False))

    @property
    def app(self) -> str:
        """The decodelab app that serves it ("runs", "ratings", ...), or the library's top package."""
        parts = self.module.split(".")
        return parts[1] if parts[0] == "decodelab" and len(parts) > 1 else parts[0]

    def converter(self, kwarg: str) -> Any | None:
        for level in self.levels:
            converters = getattr(level, "converters", {}) or {}
            if kwarg in converters:
                return converters[kwarg]
        return None

    def accepts(self, kwarg: str, value: Any) -> bool:
        """Whether the kwarg's pattern matches ``value`` as a URL segment."""
        for level in self.levels:
            if kwarg in level.regex.groupindex:
                text = self._to_url(kwarg, value)
                return text is not None
        return False

    def _to_url(self, kwarg: str, value: Any) -> str | None:
        converter = self.converter(kwarg)
        try:
            return converter.to_url(value) if converter is not None else str(value)
        except (ValueError, TypeError):
            return None

    def build(self, values: dict[str, Any]) -> str | None:
        """The URL for these kwarg values, or None when it would not resolve back to this view."""
        url = "/"
        for level in self.levels:
            formats = normalize(level.regex.pattern)
            for fmt, params in formats:
                if set(params) <= set(values):
                    parts = {p: self._to_url(p, values[p]) for p in params}
                    if any(v is None for v in parts.values()):
                        return None
                    url += fmt % parts
                    break
            else:
                return None
        try:
            match = resolve(url)
        except Resolver404:
            return None
        if match.func is not self.callback or set(match.kwargs) != set(self.kwargs):
            return None
        return url


def _walk(patterns: list, levels: tuple, namespaces: tuple) -> Iterator[Endpoint]:
    for p in patterns:
        if isinstance(p, URLResolver):
            ns = (*namespaces, p.namespace) if p.namespace else namespaces
            yield from _walk(p.url_patterns, (*levels, p.pattern), ns)
        elif isinstance(p, URLPattern):
            route = "".join(str(level) for level in (*levels, p.pattern))
            name = ":".join((*namespaces, p.name)) if p.name else ""
            callback = p.callback
            module = getattr(callback, "__module__", "") or ""
            view_class = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
            if view_class is not None:
                module = view_class.__module__
            yield Endpoint(route=route, name=name, callback=callback, module=module, levels=(*levels, p.pattern))


def endpoints() -> list[Endpoint]:
    """Every URL pattern, in resolver order; a pattern shadowed by an earlier one is kept (its
    URLs resolve to the earlier view and are walked there)."""
    return list(_walk(get_resolver().url_patterns, (), ()))


def random_values() -> list[Any]:
    """Ids that name nothing: a fresh UUID and a large integer."""
    return [uuid.uuid4(), 987_654_321]


def object_ids(obj: Any) -> list[Any]:
    """The values a URL may name an object by: its primary key, then its other unique text or
    UUID fields (opaque public ids, slugs)."""
    from django.db import models

    ids = [obj.pk]
    for f in obj._meta.concrete_fields:
        if f.unique and not f.primary_key and isinstance(f, (models.CharField, models.UUIDField)):
            value = getattr(obj, f.attname)
            if value:
                ids.append(value)
    return ids


def candidate_values(
    endpoint: Endpoint, kwarg: str, world: Any, limit: int = MAX_VALUES_PER_KWARG
) -> list[tuple[Any, bool]]:
    """(value, is A's) pairs for one URL parameter: A's ids (the model the name points at first),
    then ids that name nothing."""
    label = KWARG_MODELS.get(kwarg)
    base = kwarg.removesuffix("_id").removesuffix("_pk").replace("_", "")
    if label is None and base not in ("", "pk", "id", "objectid"):
        # experiment_id -> experiments.experiment, session_id -> ratings.ratingsession, ...
        named = [lab for lab in world.owned if lab.split(".")[1] == base]
        named += [lab for lab in world.owned if lab.split(".")[1].endswith(base) and lab not in named]
        label = named[0] if named else None
    # The named model's ids first; then one object of each of A's models, opaque text ids (what
    # <str:...> parameters usually take: item_id may well be an assignment's public id) first.
    named_ids = [v for obj in world.owned.get(label, []) for v in object_ids(obj)] if label else []
    texts = [v for objs in world.owned.values() for obj in objs for v in object_ids(obj)[1:] if isinstance(v, str)]
    pks = [objs[0].pk for objs in world.owned.values() if objs]
    owned = named_ids + texts + pks
    unique = list(dict.fromkeys(owned))
    values = [(v, True) for v in unique if endpoint.accepts(kwarg, v)][:limit]
    values += [(v, False) for v in random_values() if endpoint.accepts(kwarg, v)]
    return values


@dataclass(frozen=True)
class Target:
    endpoint: Endpoint
    url: str
    owned: bool  # some parameter holds an id of A's
    nothing: bool  # some parameter holds an id that names nothing

    @property
    def has_params(self) -> bool:
        return self.owned or self.nothing


def targets(
    world: Any, per_kwarg: int = MAX_VALUES_PER_KWARG, per_pattern: int = MAX_URLS_PER_PATTERN
) -> tuple[list[Target], list[str]]:
    """Concrete URLs for every pattern (at most ``per_pattern`` each, A's ids first), and the
    routes no URL could be built for."""
    found: list[Target] = []
    unbuildable: list[str] = []
    for endpoint in endpoints():
        kwargs = endpoint.kwargs
        if not kwargs:
            url = endpoint.build({})
            if url is None:
                unbuildable.append(endpoint.route)
            else:
                found.append(Target(endpoint, url, owned=False, nothing=False))
            continue
        choices = [candidate_values(endpoint, k, world, per_kwarg) for k in kwargs]
        built = []
        for combo in itertools.product(*choices):
            url = endpoint.build({k: v for k, (v, _) in zip(kwargs, combo, strict=True)})
            if url is not None:
                owned = any(o for _, o in combo)
                built.append(Target(endpoint, url, owned=owned, nothing=not all(o for _, o in combo)))
        # A's ids first (in the order of preference above), then the ones that name nothing.
        built.sort(key=lambda t: not t.owned)
        if not built:
            unbuildable.append(endpoint.route)
        # The admin is Django's (every view refuses non-staff alike): a few of its URLs suffice.
        found += built[: 3 if endpoint.is_admin else per_pattern]
    return found, unbuildable

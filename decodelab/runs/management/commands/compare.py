"""`manage.py compare`: the same service, broker and workers as the UI, from a terminal."""

from __future__ import annotations

import itertools
import json
import shutil
import sys
import textwrap
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from decodelab.common.errors import ApplicationError
from decodelab.runs import selectors, services
from decodelab.runs.metrics_table import metrics_rows
from decodelab.runs.serializers import ComparisonSerializer
from decodelab.users.models import Role, User
from workers.strategies import STRATEGIES


def parse_value(raw: str) -> Any:
    """Parameter values as JSON where they parse (4, 0.7, true), else as strings."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


class Command(BaseCommand):
    help = (
        "Decode one prompt under several strategies through the broker and workers, wait, and print "
        "the outputs side by side with their metrics. Needs `make run` (or a broker and worker) running."
    )

    def add_arguments(self, parser):
        parser.add_argument("--prompt", required=True)
        parser.add_argument("--strategies", required=True, help=f"comma-separated, from: {', '.join(STRATEGIES)}")
        parser.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="STRATEGY.NAME=VALUE",
            help="a parameter for one strategy, e.g. beam.num_beams=4 (repeatable)",
        )
        parser.add_argument("--max-new-tokens", type=int, default=64)
        parser.add_argument("--stop", action="append", default=[], help="a stop string (repeatable)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--model", default="")
        parser.add_argument("--no-chat", action="store_true", help="send the raw prompt, without the chat template")
        parser.add_argument("--user", help="researcher who owns the comparison (default: the only researcher)")
        parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the runs")
        parser.add_argument("--json", action="store_true", help="print one JSON document (the API's format)")

    def handle(self, *args, **opts):
        user = self._user(opts["user"])
        presets = self._presets(opts["strategies"], opts["param"], opts["seed"])
        try:
            comparison = services.comparison_create(
                owner=user,
                prompt=opts["prompt"],
                presets=presets,
                max_new_tokens=opts["max_new_tokens"],
                chat=not opts["no_chat"],
                model=opts["model"],
                stop=opts["stop"],
            )
        except ApplicationError as exc:
            raise CommandError(f"{exc.field}: {exc.message}" if exc.field else exc.message) from exc

        deadline = time.monotonic() + opts["timeout"]
        shown = -1
        end = "\r" if sys.stderr.isatty() else "\n"
        while True:
            comparison = selectors.comparison_get(user=user, comparison_id=comparison.id)
            runs = list(comparison.runs.all())
            done = sum(r.is_finished for r in runs)
            if done != shown:
                sys.stderr.write(f"{done}/{len(runs)} runs finished{end}")
                sys.stderr.flush()
                shown = done
            if done == len(runs):
                break
            if time.monotonic() > deadline:
                raise CommandError(
                    f"timed out after {opts['timeout']:.0f} s with {done}/{len(runs)} runs finished "
                    f"(comparison {comparison.id}); is a worker running? (`make run` starts one)"
                )
            time.sleep(0.5)
        if opts["json"]:
            self.stdout.write(json.dumps(ComparisonSerializer(comparison).data, indent=2))
        else:
            sys.stderr.write("\n" if end == "\r" else "")
            self._print_side_by_side(comparison, runs)
        if all(r.status == "failed" for r in runs):
            raise CommandError("every run failed")

    def _user(self, username: str | None) -> User:
        if username:
            user = User.objects.filter(username=username).first()
            if user is None:
                raise CommandError(f"--user: no user named {username!r}")
        else:
            researchers = list(User.objects.filter(role=Role.RESEARCHER)[:2])
            if len(researchers) != 1:
                raise CommandError("--user: give the researcher who owns the comparison")
            user = researchers[0]
        if not user.is_researcher:
            raise CommandError(f"--user: {user.username!r} is not a researcher")
        return user

    def _presets(self, strategies: str, params: list[str], seed: int) -> list[dict[str, Any]]:
        names = [s.strip() for s in strategies.split(",") if s.strip()]
        if not names:
            raise CommandError("--strategies: give at least one strategy")
        presets = [{"strategy": name, "params": {}, "seed": seed} for name in names]
        for item in params:
            key, sep, raw = item.partition("=")
            strategy, dot, name = key.partition(".")
            if not sep or not dot or not name:
                raise CommandError(f"--param: expected STRATEGY.NAME=VALUE, got {item!r}")
            targets = [p for p in presets if p["strategy"] == strategy]
            if not targets:
                raise CommandError(f"--param: {strategy!r} is not among --strategies")
            for p in targets:
                p["params"][name] = parse_value(raw)
        return presets

    def _print_side_by_side(self, comparison, runs) -> None:
        width = shutil.get_terminal_size((120, 40)).columns
        col = max(24, (width - 3 * (len(runs) - 1)) // max(1, len(runs)))
        blocks = []
        for run in runs:
            lines = [run.label[:col], "-" * min(col, 40)]
            if run.status == "succeeded":
                for out in run.outputs.all():
                    head = f"#{out.index + 1}" + (f" score {out.score:.4f}" if out.score is not None else "")
                    if run.outputs.count() > 1:
                        lines.append(head)
                    for para in out.text.splitlines() or [""]:
                        lines.extend(textwrap.wrap(para, col) or [""])
                    lines.append(f"[{len(out.token_ids)} tokens, {out.finish_reason}]")
            else:
                lines.extend(textwrap.wrap(f"FAILED: {run.error}", col))
            blocks.append(lines)
        self.stdout.write(f"Prompt: {comparison.prompt}\n")
        for row in itertools.zip_longest(*blocks, fillvalue=""):
            self.stdout.write(" | ".join(cell.ljust(col) for cell in row).rstrip())
        self.stdout.write("")
        table = metrics_rows(runs)
        label_w = max(len(r["label"]) for r in table["rows"])
        cell_w = max(12, min(col, 24))
        self.stdout.write(" " * label_w + "   " + " | ".join(r.label[:cell_w].ljust(cell_w) for r in runs))
        for r in table["rows"]:
            self.stdout.write(
                r["label"].ljust(label_w) + "   " + " | ".join(c[:cell_w].ljust(cell_w) for c in r["cells"])
            )
        if table["mismatch"]:
            self.stdout.write("warning: runs were made on different devices or library versions")

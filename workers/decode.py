"""`python -m workers.decode`: decode requests read as JSON lines on stdin, one result JSON
line per request on stdout. No Django, no broker; each model is loaded once.

Example:
    echo '{"model": "smollm2-135m", "strategy": "greedy", "prompt": "Hi", "max_new_tokens": 8}' \
        | python -m workers.decode

``--batch N`` reads up to N lines at a time and decodes compatible ones together
(``workers.engine.execute_batch``); results still come out one line per request, in order.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from workers.engine import execute_batch_dicts
from workers.protocol import DecodeResult


def _parse(lineno: int, line: str) -> Any:
    """The line's JSON, or a failure result saying why it is not JSON."""
    problem = None
    try:
        return json.loads(line)
    except RecursionError:  # absurdly deep nesting: an error for this line, not a crash
        problem = "nested too deeply"
    except json.JSONDecodeError as exc:
        problem = str(exc)
    return DecodeResult.failure(
        run_id=None, attempt=1, error=f"line {lineno}: invalid JSON: {problem}", error_field="request"
    )


def _flush(pending: list[Any]) -> None:
    answers = execute_batch_dicts([p for p in pending if not isinstance(p, DecodeResult)])
    for item in pending:
        out = item.to_dict() if isinstance(item, DecodeResult) else answers.pop(0)
        sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    pending.clear()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1, help="decode up to this many lines together (default 1)")
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error("--batch must be >= 1")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    pending: list[Any] = []
    for lineno, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        pending.append(_parse(lineno, line))
        if len(pending) >= args.batch:
            _flush(pending)
    if pending:
        _flush(pending)
    return 0


if __name__ == "__main__":
    sys.exit(main())

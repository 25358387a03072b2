"""Running a migration's SQL file: statements separated by a line holding only ";" (function
bodies keep their own semicolons). asyncpg prepares each statement, so they run one at a time."""

from __future__ import annotations

from pathlib import Path

from alembic import op

SQL_DIR = Path(__file__).resolve().parent / "sql"


def statements(script: str) -> list[str]:
    return [s.strip() for s in script.split("\n;\n") if s.strip() and not _only_comments(s)]


def _only_comments(statement: str) -> bool:
    lines = statement.splitlines()
    return all(not line.strip() or line.lstrip().startswith("--") for line in lines)


def read(name: str) -> str:
    return (SQL_DIR / name).read_text()


def run(name: str) -> None:
    """Execute migrations/sql/<name> statement by statement."""
    for statement in statements(read(name)):
        op.execute(statement)

"""Storage URLs: which one wins, whether it can work, and how to show it without leaking a password.

Sweeps are stored in an Optuna RDB storage. SQLite (a file beside the user) is the default; teams point several
machines at one PostgreSQL database. Everything that prints or logs a URL goes through :func:`mask_url` (or
:func:`mask_in_text` for driver messages), so there is exactly one place that decides what a secret looks like.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from storage.errors import StorageError

DEFAULT_STORAGE = "sqlite:///sweeps.db"
ENV_VAR = "SWEEPER_STORAGE"

SQLITE_DRIVER = "sqlite"
POSTGRES_DRIVER = "postgresql+psycopg"
MASK = "***"

# The schemes we accept, mapped to the SQLAlchemy driver name we actually use. `postgresql://` would work with
# SQLAlchemy 2.1's default driver anyway, but naming psycopg explicitly keeps one driver on every machine;
# `postgres://` is what Heroku-style tools print and SQLAlchemy rejects, so we accept it too.
_DRIVERS = {
    "sqlite": SQLITE_DRIVER,
    "sqlite+pysqlite": SQLITE_DRIVER,
    "postgresql": POSTGRES_DRIVER,
    "postgres": POSTGRES_DRIVER,
    "postgresql+psycopg": POSTGRES_DRIVER,
}
_EXAMPLES = "sqlite:///sweeps.db or postgresql+psycopg://user:password@host:5432/dbname"

# scheme://user:secret@  -- the secret runs to the LAST '@' of the token, so a password with an unescaped '@'
# is hidden whole. When a query also holds an '@' we hide too much (the host), never too little.
_SCHEME = r"[A-Za-z][A-Za-z0-9+.\-]*://"
_URL_USERINFO = re.compile(rf"^(?P<head>\s*{_SCHEME}[^:/@]*):(?P<secret>.*)@", re.DOTALL)
_TEXT_USERINFO = re.compile(rf"(?P<head>{_SCHEME}[^:/@\s]*):(?P<secret>\S*)@")
# password=... in a URL query or a libpq "key=value" connection string.
_KEYWORD_SECRET = re.compile(
    r"(?i)\b(?P<key>password|passwd|pwd|sslpassword)(?P<eq>\s*=\s*)(?P<secret>'[^']*'|[^&\s'\"]*)"
)
# Shorter secrets are only hidden where they sit in a URL; replacing them anywhere would garble messages.
_MIN_LITERAL_SECRET = 4


def resolve_storage_url(spec_url: str | None, cli_url: str | None, env: Mapping[str, str] = os.environ) -> str:
    """The storage URL a command should use.

    Precedence, lowest to highest: :data:`DEFAULT_STORAGE` < the YAML's ``storage`` (``spec_url``) <
    the ``SWEEPER_STORAGE`` environment variable < the ``--storage`` flag (``cli_url``). The flag wins because it
    is the most deliberate choice, typed for this one command; the environment beats the YAML so a team can point
    every checked-in space file at its shared database without editing them. Empty or blank values count as
    unset (``SWEEPER_STORAGE=`` in a shell must not mean "no storage"). The result is not validated: call
    :func:`validate_storage_url` (``open_storage`` does).
    """
    for candidate in (cli_url, env.get(ENV_VAR), spec_url):
        if candidate is not None and candidate.strip():
            return candidate.strip()
    return DEFAULT_STORAGE


def mask_url(url: str) -> str:
    """``url`` with every password replaced by ``***``: ``postgresql+psycopg://user:***@host/db``.

    Safe on anything: a string that is not a URL comes back unchanged except for embedded
    ``scheme://user:secret@`` parts and ``password=...`` pairs, so it also cleans log lines and messages.
    """
    match = _URL_USERINFO.match(url)
    if match:
        url = f"{match['head']}:{MASK}@{url[match.end():]}"
    else:
        url = _TEXT_USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", url)
    return _KEYWORD_SECRET.sub(lambda m: f"{m['key']}{m['eq']}{MASK}", url)


def mask_in_text(text: str, url: str | None) -> str:
    """``text`` (an error message, a log line) with ``url`` and its password hidden wherever they appear.

    Drivers and SQLAlchemy sometimes echo the URL or parts of it; besides masking URL shapes this removes the
    literal password (as typed and percent-decoded) when it is at least 4 characters long.
    """
    if url:
        text = text.replace(url, mask_url(url))
        for secret in sorted(_secrets_in(url), key=len, reverse=True):
            if len(secret) >= _MIN_LITERAL_SECRET:
                text = text.replace(secret, MASK)
    return mask_url(text)


def validate_storage_url(url: str) -> str:
    """Check that ``url`` names a storage sweeper can use, and return it normalised.

    Normalising only rewrites the scheme: ``postgresql://`` and ``postgres://`` become ``postgresql+psycopg://``
    (the one PostgreSQL driver we install), ``sqlite+pysqlite://`` becomes ``sqlite://``. Raises
    :class:`StorageError` for a string that is not a URL, an unsupported database or driver, a password with an
    unescaped ``@``, or a SQLite file whose folder does not exist (SQLite would only say "unable to open
    database file", much later). Nothing is connected to; see ``open_storage`` for that.
    """
    text = url.strip()
    if not text:
        raise StorageError(f"The storage URL is empty; use e.g. {_EXAMPLES}.")
    scheme, sep, rest = text.partition("://")
    if not sep or not scheme:
        raise StorageError(f"Cannot parse storage URL {mask_url(text)!r}: expected e.g. {_EXAMPLES}.")
    driver = _DRIVERS.get(scheme.lower())
    if driver is None:
        raise StorageError(
            f"Unsupported storage {scheme!r} in {mask_url(text)!r}: sweeper stores studies in SQLite (sqlite:///...) "
            "or PostgreSQL through psycopg 3 (postgresql+psycopg://...)."
        )
    normalised = f"{driver}://{rest}"
    try:
        parsed = make_url(normalised)
    except (ArgumentError, ValueError):
        raise StorageError(f"Cannot parse storage URL {mask_url(text)!r}: expected e.g. {_EXAMPLES}.") from None
    if driver == SQLITE_DRIVER:
        _check_sqlite_path(parsed, text)
    else:
        _check_postgres(parsed, text)
    return normalised


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL, or None for in-memory databases and non-SQLite URLs."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database.startswith("file:"):  # sqlite:///file:path?uri=true
        database = database[len("file:"):]
    if database in ("", ":memory:") or parsed.query.get("mode") == "memory":
        return None
    return Path(database)


def is_sqlite(url: str) -> bool:
    """Whether ``url`` names a SQLite database (after normalisation or not)."""
    return url.strip().lower().startswith(("sqlite://", "sqlite+pysqlite://"))


def _check_sqlite_path(parsed: URL, original: str) -> None:
    if parsed.host:  # sqlite://sweeps.db: SQLAlchemy reads "sweeps.db" as a host and opens an in-memory database
        raise StorageError(
            f"{mask_url(original)!r} has two slashes, so it names no file: write sqlite:///{parsed.host} "
            "(three slashes) for a relative path or sqlite:////absolute/path.db (four) for an absolute one."
        )
    path = sqlite_path(parsed.render_as_string(hide_password=False))
    if path is None:
        return
    folder = path.parent
    if str(path).startswith("~"):
        raise StorageError(
            f"SQLite path {str(path)!r} in {mask_url(original)!r} starts with '~', which is not expanded: "
            f"write the full path, e.g. sqlite:///{path.expanduser()}."
        )
    if not folder.is_dir():
        raise StorageError(
            f"The folder {str(folder.absolute())!r} for the SQLite database in {mask_url(original)!r} does not exist: "
            "create it first, or choose another path (sqlite:///relative.db or sqlite:////absolute/path.db)."
        )
    if path.is_dir():
        raise StorageError(f"{str(path.absolute())!r} in {mask_url(original)!r} is a folder, not a SQLite file.")


def _check_postgres(parsed: URL, original: str) -> None:
    if "@" in (parsed.host or ""):
        raise StorageError(
            f"The storage URL {mask_url(original)!r} has more than one '@': a password containing '@' must be "
            "percent-encoded as %40 (likewise ':' as %3A, '/' as %2F)."
        )


def _secrets_in(url: str) -> set[str]:
    """Every spelling of the password(s) in ``url``: as typed, percent-decoded, and as SQLAlchemy reads it."""
    secrets: set[str] = set()
    match = _URL_USERINFO.match(url)
    if match:
        secrets.add(match["secret"])
    secrets.update(m["secret"].strip("'") for m in _KEYWORD_SECRET.finditer(url))
    try:
        password = make_url(url).password
    except (ArgumentError, ValueError):
        password = None
    if password:
        secrets.add(str(password))
    secrets |= {unquote(s) for s in secrets}
    return {s for s in secrets if s}

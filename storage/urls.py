"""Storage URLs: which one wins, whether sweeper can use it, and how to show it without its password: SQLAlchemy's
``make_url`` parses them; added: unescaped '@'s, SQLite folder checks, passwords scrubbed from text."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.util import asbool

from storage import url_checks
from storage.errors import StorageError

DEFAULT_STORAGE = "sqlite:///sweeps.db"
ENV_VAR = "SWEEPER_STORAGE"
MASK = "***"
_DRIVERS = {"sqlite": "sqlite", "sqlite+pysqlite": "sqlite", "postgresql": "postgresql+psycopg",  # psycopg 3 always
            "postgres": "postgresql+psycopg", "postgresql+psycopg": "postgresql+psycopg"}  # Heroku's; SQLAlchemy: no
_PYSQLITE_ARGS = {"uri", "timeout", "isolation_level", "detect_types", "check_same_thread", "cached_statements"}
_EXAMPLES = "sqlite:///sweeps.db or postgresql+psycopg://user:password@host:5432/dbname"
# Secrets: scheme://user:SECRET@ (to the last '@': an unescaped '@' in a password is hidden whole, unless in a query
# value, ?application_name=me@laptop; the user runs to the first ':', '@'s and all, as make_url reads it: Azure's
# user@server; in free text a URL ends at a space), password=SECRET, and unparsable, scheme://user:SECRET.
_URL_USERINFO = re.compile(r"^(?P<head>\s*[A-Za-z][A-Za-z0-9+.\-]*://[^:/\s]*):"
                           r"(?P<secret>[^?#]*(?=@[^?#@]*\?[^@]*=)|.*)@", re.DOTALL)
_TEXT_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/\s]*):(?P<secret>\S*)@")
_NO_HOST_USERINFO = re.compile(r"(?P<head>://[^:/@\s]*):[^/?#@\s]*(?=[/?#\s]|$)")
_KEYWORD_SECRET = re.compile(r"(?i)\b(?P<key>(?:ssl)?password|passwd|pwd)(?P<eq>\s*=\s*)(?P<secret>'[^']*'|[^&\s'\"]*)")
_MIN_LITERAL_SECRET = 4  # shorter passwords are hidden only inside URLs: replacing them anywhere garbles text


def resolve_storage_url(spec_url: str | None, cli_url: str | None, env: Mapping[str, str] = os.environ) -> str:
    """Typed (``--storage``, ``--set storage=``) > ``SWEEPER_STORAGE`` (a team's database) > the YAML's > default."""
    given, name = (cli_url, "--storage") if cli_url is not None else (env.get(ENV_VAR), ENV_VAR)
    if given is not None and not given.strip():  # "$URL" unset in a script: not unset, it would write elsewhere
        raise StorageError(f"{name} is empty; give a storage URL ({_EXAMPLES}), or leave it out (unset)")
    return next((c.strip() for c in (cli_url, env.get(ENV_VAR), spec_url) if c and c.strip()), DEFAULT_STORAGE)


def mask_url(text: str) -> str:
    """``text`` (a URL, a log line, a libpq string) with every ``scheme://user:secret@`` and ``password=`` hidden."""
    whole = _URL_USERINFO.match(text)  # the whole text is one URL: its password may hold spaces
    text = f"{whole['head']}:{MASK}@{text[whole.end():]}" if whole else _TEXT_USERINFO.sub(rf"\g<head>:{MASK}@", text)
    return _KEYWORD_SECRET.sub(lambda m: f"{m['key']}{m['eq']}{MASK}", text)


def mask_in_text(text: str, url: str | None) -> str:
    """:func:`mask_url` on ``text``, and ``url``'s password (as typed and decoded) removed wherever it appears."""
    if url:
        text = text.replace(url, mask_url(url))
        typed = [m["secret"] for m in [_URL_USERINFO.match(url), *_KEYWORD_SECRET.finditer(url)] if m]
        decoded = [parsed.password, parsed.query.get("password")] if (parsed := parse_url(url)) else []
        secrets = {s.strip("'") for s in typed + decoded if isinstance(s, str)}
        for secret in sorted((s for s in secrets if len(s) >= _MIN_LITERAL_SECRET), key=len, reverse=True):
            text = text.replace(secret, MASK)
    return mask_url(text)


def validate_storage_url(url: str) -> str:
    """``url`` with its driver (``postgres``) and SQLite URI (``file:``) normalised, else what to fix; no connecting."""
    # read as libpq reads them: u@host:5432/db?application_name=a@b, a socket folder as the host (%2Fvar%2Frun...)
    text = url_checks.socket_host_in_query(url_checks.query_ats_encoded(url.strip()))
    parsed = parse_url(text)  # read, its scheme://host:digits has a port (docker's postgres:5432), no password
    shown = repr(mask_url(text) if parsed else _NO_HOST_USERINFO.sub(rf"\g<head>:{MASK}", mask_url(text)))
    encoded = "in a password, '@' ':' '/' '%' are written %40 %3A %2F %25"
    if not text.lower().startswith("sqlite") and (userinfo := _URL_USERINFO.match(text)) and "@" in userinfo["secret"]:
        raise StorageError(f"The storage URL {shown} has more than one '@': {encoded}.")
    url_checks.check_not_a_file_path(text, shown)
    if parsed is None:
        raise StorageError(f"Cannot parse storage URL {shown}: expected e.g. {_EXAMPLES} (a port is a number; "
                           f"{encoded})." if text else f"The storage URL is empty; use e.g. {_EXAMPLES}.")
    if (driver := _DRIVERS.get(parsed.drivername.lower())) is None:
        raise StorageError(f"Unsupported storage {parsed.drivername!r} in {shown}: sweeper stores studies in SQLite "
                           "(sqlite:///...) or PostgreSQL through psycopg 3 (postgresql+psycopg://...).")
    if driver == "sqlite" and parsed.host:  # sqlite://x.db: SQLAlchemy reads x.db as a host, opens an in-memory db
        raise StorageError(f"{shown} has two slashes, so it names no file: write sqlite:///{parsed.host} (three "
                           "slashes) for a relative path or sqlite:////absolute/path.db (four) for an absolute one.")
    url_checks.check_port(parsed, shown)
    normalised = driver + text[len(parsed.drivername):]  # the rest as typed: render_as_string re-quotes ':memory:'
    if driver == "sqlite" and asbool(parsed.query.get("uri")) and set(parsed.query) - _PYSQLITE_ARGS:  # else SQLite
        normalised = re.sub(r":///(?!file:)(?=[^?])", ":///file:", normalised, count=1)  # makes 'x.db?mode=rw'
    url_checks.check_sqlite_file(sqlite_path(normalised), shown)
    return normalised


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL, or None for in-memory ones (``mode=memory`` needs ``uri=true``) and others."""
    if (parsed := parse_url(url)) is None or parsed.get_backend_name() != "sqlite":
        return None
    database, query = (parsed.database or "").removeprefix("file:"), parsed.query  # sqlite:///file:path?uri=true
    in_memory = database in ("", ":memory:") or (query.get("mode") == "memory" and asbool(query.get("uri")))
    return None if in_memory else Path(database)


def is_sqlite(url: str) -> bool:  # after normalisation or not
    return (parsed := parse_url(url)) is not None and parsed.get_backend_name().lower() == "sqlite"


def parse_url(url: str) -> URL | None:  # None where SQLAlchemy reads no URL in it
    try:
        return make_url(url.strip())
    except (ArgumentError, ValueError):
        return None

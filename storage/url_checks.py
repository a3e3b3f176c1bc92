"""What :func:`storage.urls.validate_storage_url` does besides parsing and masking (``urls.py``): URLs that
``make_url`` reads otherwise than libpq rewritten as libpq reads them, and checks of parts that say what to write."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from storage.errors import StorageError

# make_url reads u@host:5432/db?application_name=a@b as user 'u@host', password '5432/db?application_name=a' and
# host 'b' (the user runs to the first ':', the password to the next '@'); libpq and RFC 3986 read host 'host'. The
# sign: what make_url takes for the password is a port (digits; or the rest of an IPv6 [host], with a port or none),
# a '/' and a '?key=' before that '@'. A password that is no port (u:pa/ss?k=v@h, unencoded) keeps make_url's
# reading: rewritten, it was shown cut at the '/', its rest unmasked
_QUERY_AFTER_MISREAD_PORT = re.compile(
    r"^\s*[\w+]+://(?:[^:/\[]*\[[^\]/]*\](?::\d*)?|[^:/\[]*:\d*)/[^@?]*\?(?=[^@=&/]+=[^@]*@)")


def query_ats_encoded(text: str) -> str:
    """``text`` with each '@' of its query written %40 where make_url would take one for the end of a password:
    then it reads the URL as libpq does (query values are decoded: ``application_name`` stays ``a@b``). A '/' after
    the last '@' (``u:1234/pa?ss=wd@host/db``) is more likely a password's: refused unshown, not sent to host 'u',
    port 1234, with the password printed whole in every message about that host."""
    if (misread := _QUERY_AFTER_MISREAD_PORT.match(text)) is None:
        return text
    # u:1234/pa?ss=wd@h/db: a host then its '/', or its '?' (no database: u:1234/pa?ss=wd@h?sslrootcert=/c). Not a
    # later query value's '/' (?application_name=a@b&sslrootcert=/c)
    if re.match(r"[^&=/?]*[/?]", text.rpartition("@")[2]):
        raise StorageError("The storage URL reads two ways: after the first ':' come digits then a '/' (a port, as "
                           "libpq reads it) and an '@' after the '?' (the end of a password, as SQLAlchemy reads it): "
                           "in a password, write '/' '?' '@' as %2F %3F %40; in a query value, '@' as %40.")
    return text[:misread.end()] + text[misread.end():].replace("@", "%40")


def check_not_a_file_path(text: str, shown: str) -> None:
    """``--storage rel.db``: a bare path (no ':' at all; not a libpq ``key=value``, nor ``sqlite//x.db``, a URL that
    lost its ':') is no URL, and "cannot parse" left the user to find the scheme: give the URL to type."""
    if text and ":" not in text and "=" not in text and "//" not in text:
        raise StorageError(f"The storage {shown} is a file path, not a URL: write sqlite:///{Path(text).expanduser()} "
                           "for a SQLite database in that file (sqlite:/// then the path, relative or absolute).")


def socket_host_in_query(text: str) -> str:
    """``text`` with a socket folder written as the host (libpq's URI form, ``postgres@%2Fvar%2Frun%2Fpostgresql/db``)
    moved to the query (``postgres@/db?host=/var/run/postgresql``): make_url leaves a host as typed, so psycopg
    looked '%2Fvar%2Frun%2Fpostgresql' up as a host name, where a query's ``host=`` reaches libpq decoded."""
    try:
        parsed = make_url(text)
    except (ArgumentError, ValueError):
        return text  # validate_storage_url says why
    host = parsed.host or ""
    if not host.lower().startswith("%2f") or parsed.drivername.lower().startswith("sqlite") or "host" in parsed.query:
        return text
    written = text.replace(f"@{host}", "@", 1) if f"@{host}" in text else text.replace(f"://{host}", "://", 1)
    return f"{written}{'&' if '?' in written else '?'}host={unquote(host)}"


def check_port(parsed: URL, shown: str) -> None:
    """A port libpq can connect to: ``:99999`` passed the preflight (validate said nothing) and failed only at the
    driver (``invalid port number``); ``:0`` reached the default port unsaid."""
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise StorageError(f"The port {parsed.port} in {shown} is out of range: a port is 1 to 65535 (leave it out "
                           "for PostgreSQL's default, 5432).")


def check_sqlite_file(path: Path | None, shown: str) -> None:
    """A SQLite file (``path``, None for an in-memory database) that sweeper can create or open: SQLite itself would
    say only "unable to open database file". ``shown``: the URL as typed, masked, for the message."""
    if path is not None and str(path).startswith("~"):
        raise StorageError(f"SQLite path {str(path)!r} in {shown} starts with '~', which is not expanded: write the "
                           f"full path, e.g. sqlite:///{path.expanduser()}.")
    if path is not None and not path.parent.is_dir():
        raise StorageError(f"The folder '{path.parent.absolute()}' for the SQLite database in {shown} does not "
                           "exist: create it or pick another path (sqlite:///relative.db, sqlite:////absolute/path.db).")
    if path is not None and path.is_dir():
        raise StorageError(f"{str(path.absolute())!r} in {shown} is a folder, not a SQLite file.")

"""URLs whose password is secret: find the secret parts, so only they are hidden or encrypted.

A component type declares a configuration key a URL secret with ``SecretURL``
(:mod:`etl_meta.components.contracts`). Its password and the values of sensitive query
parameters (``?sslpassword=``, ``token=``) are secret; scheme, user, host, port, database and the
other parameters are not, so people can see where a component writes::

    postgresql://etl:pw@warehouse/db?sslmode=require&sslpassword=x
                     ^^                                          ^   secret parts

Only URLs read the same way by every parser are split: ``scheme://[user[:password]@]host[/path]
[?query]`` with no fragment, no whitespace or control character, no ``@`` past the host, a host
made of host characters only. A password holding an unencoded ``/``, ``?`` or ``#`` (which
SQLAlchemy and ``urllib`` would split differently), a libpq keyword DSN, a JDBC URL: none is
understood, and callers then treat the whole value as one secret (fail closed).

This module is syntax only, with no dependency: callers pass which query parameters are secret
(:func:`etl_meta.masking.is_sensitive_key`) and what to put in place of a secret part.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import unquote_plus, urlsplit

_URL_RE = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<netloc>[^/?#]*)(?P<path>[^?#]*)"
    r"(?:\?(?P<query>[^#]*))?"
)
# Host names, IPv4/IPv6 literals, ports and libpq's comma-separated host lists; nothing else
# (a ``;password=`` or an ``=`` here means a syntax we do not understand).
_HOSTS_RE = re.compile(r"[A-Za-z0-9.\-_~%:,\[\]]*")
# Query parameters are separated by ``&``, and by ``;`` in some drivers: split on both, or a
# ``?a=1;password=x`` would be read as one harmless parameter ``a``.
_QUERY_SEPARATOR_RE = re.compile(r"([&;])")

#: A URL cut into ``(text, is_secret)`` segments; joining the texts gives the URL back exactly.
Segments = list[tuple[str, bool]]


def split_url(text: str, is_secret_param: Callable[[str], bool]) -> Segments | None:
    """``text`` as segments, the password and sensitive query values flagged secret.

    ``None`` when ``text`` is not a URL this module reads unambiguously (see the module
    docstring): the caller must then treat the whole value as secret. An empty password is no
    secret (nothing to hide).
    """
    if not text.isprintable() or any(char.isspace() for char in text):
        return None
    match = _URL_RE.fullmatch(text)
    if match is None:
        return None
    netloc, path, query = match["netloc"], match["path"], match["query"]
    # An ``@`` past the host means the password held a ``/`` or ``?``: parsers disagree on it.
    if "@" in path or (query is not None and "@" in query) or "=" in path or ";" in path:
        return None
    userinfo, at, hosts = netloc.rpartition("@")
    if not _HOSTS_RE.fullmatch(hosts) or not _parses(text):
        return None
    segments: Segments = [(match["scheme"], False)]
    if at:
        user, colon, password = userinfo.partition(":")
        segments.append((user + colon, False))
        if password:
            segments.append((password, True))
        segments.append(("@", False))
    segments.append((hosts + path, False))
    if query is not None:
        segments.append(("?", False))
        for part in _QUERY_SEPARATOR_RE.split(query):
            name, equals, value = part.partition("=")
            if equals and value and is_secret_param(unquote_plus(name)):
                segments += [(name + equals, False), (value, True)]
            else:
                segments.append((part, False))
    return segments


def _parses(text: str) -> bool:
    # What Python's own parser refuses (an unbalanced IPv6 bracket) is no URL here either.
    try:
        urlsplit(text)
    except ValueError:
        return False
    return True


def replace_secret_parts(
    text: str, is_secret_param: Callable[[str], bool], replace: Callable[[str], str]
) -> str | None:
    """``text`` with each secret part ``p`` replaced by ``replace(p)``, the rest kept exactly.

    ``None`` when ``text`` is not understood: the caller must treat the whole value as secret.
    Masking replaces with ``***``, encryption with the percent-encoded ciphertext, decryption
    with the plaintext (see :mod:`etl_meta.masking` and :mod:`etl_meta.secrets`).
    """
    segments = split_url(text, is_secret_param)
    if segments is None:
        return None
    return "".join(replace(part) if secret else part for part, secret in segments)


def secret_parts(text: str, is_secret_param: Callable[[str], bool]) -> list[str] | None:
    """The secret parts of ``text`` in order (``None`` when ``text`` is not understood)."""
    segments = split_url(text, is_secret_param)
    return None if segments is None else [part for part, secret in segments if secret]

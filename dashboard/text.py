"""Text from outside (links, file names, file contents, library errors) shown as text.

Streamlit renders every message (``st.error``, ``st.warning``, captions, status labels) as GitHub
Markdown: a link value ``[Session expired](http://...)`` would become a clickable link on our page,
``![x](http://host/p.png)`` would make the visitor's browser fetch a remote image, and a bare
``http://...`` or ``www....`` is turned into a link by GFM's autolink rule *after* escapes are
resolved. :func:`plain` makes any string safe to embed in Markdown: it backslash-escapes every ASCII
punctuation character (so no Markdown, HTML, directive or math syntax survives) and breaks the
patterns the autolink rule looks for with a zero-width space. :func:`user_message` also removes
what a visitor must not see: server paths (reduced to the file's own name) and library banners.
No Streamlit here: the page calls these functions.
"""

from __future__ import annotations

import re
import string

MAX_MESSAGE_CHARS = 400
"""Longest message shown; longer ones are cut (library errors can be pages long)."""

_ZWSP = "\u200b"
_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")
_AUTOLINK = re.compile(r"(?i)(https?|ftp|mailto|file|www)(?=\\?[:.])|(@)")
_PATH = re.compile(r"(?<![\w.~:/])(?:/[\w.+@%=,-]+)+/([\w.+@%=,-]+)")
_BANNERS = re.compile(r"(?i)\b(ffmpeg version|ffprobe version|built with gcc|configuration: --)")


def strip_paths(text: str) -> str:
    """Replace absolute POSIX paths (``/srv/app/data/x.nc``) by their last part (``x.nc``)."""
    return _PATH.sub(lambda m: m.group(1), text)


def user_message(text: object) -> str:
    """A message fit for a visitor: one line, no server paths, no library banner, bounded length.

    Parameters
    ----------
    text : object
        An error message (``str(exc)``) or any text from a library.

    Returns
    -------
    str
        Plain text (not yet Markdown-escaped; see :func:`plain`).
    """
    raw = str(text)
    banner = _BANNERS.search(raw)
    if banner:
        raw = raw[: banner.start()].rstrip(" :\n(")
    line = " ".join(raw.split())  # one line: tracebacks and banners span many
    line = strip_paths(line)
    if len(line) > MAX_MESSAGE_CHARS:
        line = line[: MAX_MESSAGE_CHARS - 1].rstrip() + "…"
    return line


def plain(text: object) -> str:
    """``text`` as Markdown that renders exactly as the characters given: no links, images or HTML.

    Parameters
    ----------
    text : object
        Any text (converted with ``str``), e.g. a query-string value or a file name.

    Returns
    -------
    str
        Markdown source; shown by Streamlit it reads as ``text`` (with zero-width spaces that stop
        ``http://``, ``www.`` and ``name@host`` from becoming links).
    """
    escaped = _PUNCTUATION.sub(r"\\\1", str(text))
    return _AUTOLINK.sub(lambda m: (m.group(1) or m.group(2)) + _ZWSP, escaped)


def safe(text: object) -> str:
    """:func:`user_message` then :func:`plain`: what every error or warning on the page goes through."""
    return plain(user_message(text))


__all__ = ["MAX_MESSAGE_CHARS", "plain", "safe", "strip_paths", "user_message"]

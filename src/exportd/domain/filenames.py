"""File names people can read, in their own language, that every filesystem accepts.

One home for the rules, used for uploaded images, the entries of an export's
ZIP, the ZIP's own name and its download header:

* Unicode is kept (normalised to NFC, so a name typed on macOS and on Windows
  is the same name): "Buňky žluté" stays "Buňky žluté".
* What Windows refuses is made safe: the characters `< > : " / \\ | ? *` and
  control characters become `_`; leading and trailing dots and spaces go; a
  reserved device name (CON, PRN, AUX, NUL, COM0–9, LPT0–9, CONIN$, CONOUT$,
  with any extension) gets a `_` after its stem.
* At most `MAX_LENGTH` characters (and 255 bytes of UTF-8), keeping the
  extension.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime

MAX_LENGTH = 100  #: characters of a file name, extension included
MAX_BYTES = 255  #: what ext4, APFS and NTFS allow for one name
SHORT_ID = 8  #: characters of a job id added to an export's name when two would collide

_FORBIDDEN = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f-\x9f]')
_RESERVED = re.compile(r"(CON|PRN|AUX|NUL|CONIN\$|CONOUT\$|(COM|LPT)[0-9¹²³])", re.IGNORECASE)
_SPACES = re.compile(r"\s+")
_UNDERSCORES = re.compile(r"_{2,}")


def clean_file_name(name: str, fallback: str, max_length: int = MAX_LENGTH) -> str:
    """`name` made safe as one file name (not a path: separators become `_`); `fallback` when
    nothing usable is left."""
    text = _FORBIDDEN.sub("_", unicodedata.normalize("NFC", name)).strip(" .")
    if not text.strip("_"):
        text = fallback
    stem, dot, suffix = text.rpartition(".")
    if not dot or not stem:
        stem, suffix = text, ""
    else:
        suffix = "." + suffix
    if len(suffix) > max_length // 4:  # a long "extension" is part of the name
        stem, suffix = stem + suffix, ""
    first, _, rest = stem.partition(".")
    if _RESERVED.fullmatch(first.rstrip(" ")):
        stem = first.rstrip(" ") + "_" + ("." + rest if rest else "")
    return _fit(stem, suffix, max_length)


def export_file_names(project_name: str, started_at: datetime, job_id: str) -> list[str]:
    """The names an export's ZIP may have, in order of preference:
    `Demo_spheroids_2026-11-30_1432.zip`, then with a short id, then with the whole id.

    The time is the export's start in the server's time zone. Whoever records the
    name takes the first that no other export of the same user has.
    """
    words = _SPACES.sub("_", clean_file_name(project_name, "export", MAX_LENGTH))
    project = _UNDERSCORES.sub("_", words).strip("_.") or "export"
    when = started_at.astimezone().strftime("%Y-%m-%d_%H%M")
    ident = _SPACES.sub("_", clean_file_name(job_id, "job", MAX_LENGTH))
    names = []
    for tail in ("", f"_{ident[:SHORT_ID]}", f"_{ident}"):
        suffix = f"_{when}{tail}.zip"
        names.append(_fit(project, suffix, MAX_LENGTH).replace("_" + suffix, suffix))
    return names


def ascii_fallback(name: str) -> str:
    """The name in plain ASCII for an HTTP header's `filename=` (letters lose their accents,
    anything else becomes `_`)."""
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    ascii_only = re.sub(r"[^\x20-\x7e]|[\"\\\\]", "_", plain)
    return _UNDERSCORES.sub("_", ascii_only) or "export.zip"


def _fit(stem: str, suffix: str, max_length: int) -> str:
    """`stem + suffix`, the stem shortened until both fit in `max_length` characters and `MAX_BYTES`."""
    stem = stem[:max(1, max_length - len(suffix))]
    while len((stem + suffix).encode("utf-8")) > MAX_BYTES and len(stem) > 1:
        stem = stem[:-1]
    return stem.rstrip(" .") + suffix if stem.rstrip(" .") else "_" + suffix

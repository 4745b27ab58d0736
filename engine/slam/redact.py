"""Redaction of personal data from text, before anything is written.

Built-in detectors, each replacing what it finds with a bracketed token:

- ``[EMAIL]``: e-mail addresses, including internationalised ones (``josé@correo.es``);
- ``[IBAN]``: IBANs, checked with their mod-97 check digits (python-stdnum);
- ``[CARD]``: payment card numbers of 13 to 19 digits, spaced or dashed, that pass the Luhn check
  (python-stdnum), so order numbers and other long digit runs are left alone;
- ``[PHONE]``: phone numbers as libphonenumber (``phonenumbers``) recognises them, in the national
  formats of the configured regions and in international format (+...) from anywhere.

Custom patterns (``NAME=REGEX``) run first, so a team's own identifiers (``EMP-123456``) are
replaced whole by ``[NAME]`` before the built-ins look at their digits. Redacting twice changes
nothing more.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import phonenumbers
from phonenumbers.phonenumbermatcher import _PATTERN as _PHONE_CANDIDATE
from stdnum import iban, luhn

BUILTINS = ("email", "iban", "card", "phone")
LABELS = {"email": "e-mail addresses", "iban": "IBANs", "card": "card numbers",
          "phone": "phone numbers"}
TOKENS = {"email": "[EMAIL]", "iban": "[IBAN]", "card": "[CARD]", "phone": "[PHONE]"}
# National formats recognised by default; a number written with +country code is found anyway.
DEFAULT_PHONE_REGIONS = (
    "US", "CA", "MX", "BR", "AR", "GB", "IE", "FR", "DE", "AT", "CH", "NL", "BE", "ES", "PT", "IT",
    "PL", "SE", "NO", "DK", "FI", "IN", "CN", "JP", "KR", "AU", "NZ", "SG", "ZA",
)
# Dates are digit runs with separators too (a Danish number reads like 2024-03-15).
_DATE = re.compile(r"^(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}"
                   r"|(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))$")
# Context kept around each phone candidate when the matcher scans only the text near candidates
# (more than the matcher looks at around one: a neighbouring character, a run of punctuation).
_PHONE_MARGIN = 32
PATTERN_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,31}$")

_EMAIL = re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d])")


def label(kind: str) -> str:
    """How a summary names what a detector (or custom pattern NAME) replaced."""
    return LABELS.get(kind, f"{kind} matches")


class RedactionError(ValueError):
    """A redaction setting that cannot be used; names the setting."""


@dataclass(frozen=True)
class Redactor:
    """Replaces personal data in text; `redact` returns the text and what it replaced, by kind."""

    patterns: tuple[tuple[str, re.Pattern[str]], ...] = ()
    builtins: tuple[str, ...] = BUILTINS
    phone_regions: tuple[str, ...] = DEFAULT_PHONE_REGIONS

    @classmethod
    def build(cls, patterns: Iterable[str] = (), *, builtins: Sequence[str] = BUILTINS,
              phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS,
              setting: str = "--redact") -> Redactor:
        """From NAME=REGEX strings; every problem names the setting and the pattern."""
        compiled: list[tuple[str, re.Pattern[str]]] = []
        for text in patterns:
            name, sep, regex = text.partition("=")
            name = name.strip()
            if not sep or not regex:
                raise RedactionError(f"{setting} {text!r}: write NAME=REGEX, e.g. "
                                     r"EMPLOYEE_ID=EMP-\d{6}")
            if not PATTERN_NAME.match(name):
                raise RedactionError(f"{setting} {name}: the name must be upper case letters, "
                                     "digits and _ (it becomes the token [NAME])")
            if name in {k.upper() for k in BUILTINS}:
                raise RedactionError(f"{setting} {name}: a built-in detector already has this "
                                     "name; choose another")
            try:
                pattern = re.compile(regex)
            except re.error as e:
                raise RedactionError(f"{setting} {name}: not a valid regular expression "
                                     f"({e})") from None
            if pattern.search(""):
                raise RedactionError(f"{setting} {name}: the pattern matches empty text; it "
                                     "must match at least one character")
            compiled.append((name, pattern))
        unknown = sorted(set(builtins) - set(BUILTINS))
        if unknown:
            raise RedactionError(f"built-in detectors {', '.join(unknown)}: unknown; choose from "
                                 f"{', '.join(BUILTINS)}")
        bad_regions = sorted(r for r in phone_regions
                             if r.upper() not in phonenumbers.SUPPORTED_REGIONS)
        if bad_regions:
            raise RedactionError(f"phone regions {', '.join(bad_regions)}: not ISO 3166 region "
                                 "codes libphonenumber knows (e.g. US, GB, DE, JP)")
        return cls(tuple(compiled), tuple(b for b in BUILTINS if b in builtins),
                   tuple(r.upper() for r in phone_regions))

    def redact(self, text: str) -> tuple[str, Counter[str]]:
        counts: Counter[str] = Counter()
        if not text:
            return text, counts
        for name, pattern in self.patterns:
            text, n = pattern.subn(f"[{name}]", text)
            counts[name] += n
        for kind in self.builtins:
            text, n = _DETECTORS[kind](self, text)
            counts[kind] += n
        return text, +counts

    def redact_all(self, texts: Iterable[str]) -> tuple[list[str], Counter[str]]:
        total: Counter[str] = Counter()
        out = []
        for text in texts:
            clean, counts = self.redact(text)
            out.append(clean)
            total += counts
        return out, total


def _replace(text: str, spans: list[tuple[int, int]], token: str) -> tuple[str, int]:
    if not spans:
        return text, 0
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    parts, last = [], 0
    for start, end in merged:
        parts += [text[last:start], token]
        last = end
    parts.append(text[last:])
    return "".join(parts), len(merged)


def _emails(_: Redactor, text: str) -> tuple[str, int]:
    return _EMAIL.subn(TOKENS["email"], text)


def _ibans(_: Redactor, text: str) -> tuple[str, int]:
    spans = []
    for m in _IBAN.finditer(text):
        # The pattern may run into a following code; keep the longest prefix that checks out.
        positions = [m.start() + i for i, c in enumerate(m.group()) if c != " "]
        compact = "".join(text[p] for p in positions)
        for length in range(len(compact), 14, -1):
            if iban.is_valid(compact[:length]):
                spans.append((m.start(), positions[length - 1] + 1))
                break
    return _replace(text, spans, TOKENS["iban"])


def _cards(_: Redactor, text: str) -> tuple[str, int]:
    spans = [(m.start(), m.end()) for m in _CARD.finditer(text)
             if luhn.is_valid(re.sub(r"[ -]", "", m.group()))]
    return _replace(text, spans, TOKENS["card"])


@functools.lru_cache(maxsize=32)
def min_phone_digits(regions: tuple[str, ...]) -> int:
    """The fewest digits a phone number found in these regions can be written with: the shortest
    national number libphonenumber's metadata allows in any of them (Austria's and Germany's
    have 4 digits), or in international format the shortest anywhere (4) after a country code
    (at least 1 digit). Text and candidates with fewer digits are not scanned."""
    def shortest(region: str) -> int:
        return min(phonenumbers.PhoneMetadata.metadata_for_region(region)
                   .general_desc.possible_length)

    anywhere = min(shortest(r) for r in phonenumbers.SUPPORTED_REGIONS) + 1
    return min([anywhere, *(shortest(r) for r in regions)])


def _phone_windows(text: str, min_digits: int) -> list[tuple[int, int]]:
    """Where in `text` a phone number can be: around each of libphonenumber's own candidates
    (its matcher's pattern) with at least `min_digits` digits, with a margin, merged. Each
    region's matcher then reads these windows only: an answer full of short numbers ("step 1",
    "3 items", "tok15") costs one regular-expression pass instead of a parse per candidate and
    region (29 regions by default)."""
    windows: list[tuple[int, int]] = []
    for m in _PHONE_CANDIDATE.finditer(text):
        if sum(c.isdigit() for c in m.group()) < min_digits:
            continue
        start, end = max(0, m.start() - _PHONE_MARGIN), min(len(text), m.end() + _PHONE_MARGIN)
        if windows and start <= windows[-1][1]:
            windows[-1] = (windows[-1][0], end)
        else:
            windows.append((start, end))
    return windows


def _phones(self: Redactor, text: str) -> tuple[str, int]:
    min_digits = min_phone_digits(self.phone_regions)
    if sum(c.isdigit() for c in text) < min_digits:
        return text, 0
    spans = []
    for start, end in _phone_windows(text, min_digits):
        window = text[start:end]
        for region in self.phone_regions:
            spans += [(start + m.start, start + m.end)
                      for m in phonenumbers.PhoneNumberMatcher(window, region)
                      if not _DATE.match(m.raw_string)]
    return _replace(text, spans, TOKENS["phone"])


_DETECTORS = {"email": _emails, "iban": _ibans, "card": _cards, "phone": _phones}

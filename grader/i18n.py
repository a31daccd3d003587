"""Words for people, in their language: findings are message ids with parameters; one catalogue per language.

Checks build ``Message``s (a stable id and plain-data parameters) and never finished sentences; the
renderers (templates, terminal, exports) turn them into text with ``say``. The catalogues are gettext
``.po`` files (``grader/locale/<lang>.po``; the message id is the ``msgid``, the text its ``msgstr``),
read with Babel and cached compiled (``.mo``, read with the standard library's ``gettext``) so that a
run pays Babel's import only once per catalogue change. Placeholders are ``str.format`` fields
(``{error}``); numbers keep their technical form (``1.2e-07``, a decimal point) in every language.
"""

from __future__ import annotations

import functools
import io
import math
import os
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LANGUAGES = ("en", "es")
DEFAULT = "en"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"


@dataclass(frozen=True)
class Message:
    """A finding's words as data: rendered only when a person reads it, in the language asked for."""

    id: str
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "params": {k: _plain(v) for k, v in self.params.items()}}

    def english(self) -> str:
        """The English words, for logs and tests; a report asks ``say`` with the reader's language."""
        return say(self, "en")

    def __bool__(self) -> bool:
        return not (self.id == VERBATIM and not self.params.get("text"))

    def __str__(self) -> str:  # a message still said inside an English sentence (a check not yet in the catalogue)
        return self.english()


@dataclass(frozen=True)
class Texts:
    """A text an author wrote in several languages (a rubric's title, a cause's ``say``)."""

    by_language: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, value: str | Mapping[str, str]) -> Texts:
        if isinstance(value, Mapping):
            return cls(tuple((str(k), str(v)) for k, v in value.items()))
        return cls((("", str(value)),))  # one text for every language

    def get(self, lang: str) -> str:
        texts = dict(self.by_language)
        return texts.get(lang) or texts.get("") or texts.get(DEFAULT) or next(iter(texts.values()), "")

    def to_dict(self) -> dict[str, str]:
        return {k or "*": v for k, v in self.by_language}

    def __str__(self) -> str:  # a text still said inside an English sentence: its English
        return self.get(DEFAULT)


VERBATIM = "text"  # a text that is already words (a learner's exception, a rubric's own sentence)


def msg(message_id: str, **params: Any) -> Message:
    return Message(message_id, params)


def verbatim(text: str) -> Message:
    return Message(VERBATIM, {"text": text})


def joined(*parts: Message | None, sep: str = " ") -> Message:
    """Sentences said one after the other (a finding, then a note); empty parts are left out."""
    kept = [p for p in parts if p]
    if len(kept) == 1:
        return kept[0]
    return Message("join", {"parts": kept, "sep": sep})


_TEXT_KEYS = frozenset((*LANGUAGES, "*"))


def from_dict(data: Any) -> Any:
    """Read back what ``Message.to_dict`` wrote (a stored attempt, a results file)."""
    if type(data) in _SCALARS:  # most of a stored result: read back thousands of times on every run
        return data
    if isinstance(data, list):
        return [from_dict(v) for v in data]
    if isinstance(data, Mapping):
        if len(data) == 2 and isinstance(data.get("id"), str) and isinstance(data.get("params"), Mapping):
            return Message(data["id"], {str(k): v if type(v) in _SCALARS else from_dict(v) for k, v in data["params"].items()})
        if data and _TEXT_KEYS.issuperset(data) and all(isinstance(v, str) for v in data.values()):
            return Texts(tuple(("" if k == "*" else k, v) for k, v in data.items()))
        return {k: from_dict(v) for k, v in data.items()}
    return data


_SCALARS = frozenset({str, int, float, bool, type(None)})


def message_from(data: Any) -> Message:
    """A stored message, or a plain string from a file written before messages were data."""
    value = from_dict(data)
    return value if isinstance(value, Message) else verbatim("" if value is None else str(value))


def _plain(value: Any) -> Any:
    """Nested messages as dicts; numbers are left to the JSON writer (``grader.results.plain``)."""
    if isinstance(value, (Message, Texts)):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def language(lang: str | None) -> str:
    """``es_ES.UTF-8`` → ``es``; anything unknown → English."""
    code = (lang or "").split(".")[0].split("_")[0].split("-")[0].lower()
    return code if code in LANGUAGES else DEFAULT


def locale_language(environ: Mapping[str, str] | None = None) -> str:
    """The instructor's own language from the usual variables, as gettext reads them."""
    env = os.environ if environ is None else environ
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name, "")
        if value and value not in ("C", "POSIX"):
            return language(value.split(":")[0])
    return DEFAULT


def class_language(lang: str) -> str:
    """The instructor's own text (the class page, their terminal, the command line's errors): the language asked
    for, else the locale's."""
    return lang if lang in LANGUAGES else locale_language()


def lookup(lang: str, message_id: str) -> str | None:
    """The catalogue's text for an id, or ``None`` when this language lacks it."""
    text = _catalogue(language(lang)).gettext(message_id)
    return None if text == message_id else text


@functools.cache
def _catalogue(lang: str) -> Any:
    """The language's ``gettext.GNUTranslations`` (imported here: a run that renders nothing never needs it)."""
    import gettext

    data = (LOCALE_DIR / f"{lang}.po").read_bytes()
    return gettext.GNUTranslations(io.BytesIO(_compiled(lang, data)))


def _read_po(data: bytes, lang: str) -> Any:
    from babel.messages.pofile import read_po  # imported only when a catalogue changed

    return read_po(io.BytesIO(data), locale=lang)


def _compiled(lang: str, data: bytes) -> bytes:
    """The compiled catalogue, from a per-user cache keyed by the ``.po``'s content."""
    import hashlib
    import tempfile

    try:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "grader"
    except (RuntimeError, KeyError):  # no home to cache in: compiled again each run
        base = Path(tempfile.gettempdir()) / f"grader-cache-{os.getuid()}"
    path = base / f"{lang}-{hashlib.sha256(data).hexdigest()[:16]}.mo"
    try:
        if path.is_file() and not path.is_symlink() and path.stat().st_uid == os.getuid():
            return path.read_bytes()
    except OSError:
        pass
    from babel.messages.mofile import write_mo

    buffer = io.BytesIO()
    write_mo(buffer, _read_po(data, lang))
    compiled = buffer.getvalue()
    try:
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.NamedTemporaryFile(dir=base, delete=False) as tmp:
            tmp.write(compiled)
        os.replace(tmp.name, path)
        for stale in base.glob(f"{lang}-*.mo"):  # an older catalogue's: never read again
            if stale != path:
                stale.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only home: the catalogue is compiled again next run, nothing else changes
    return compiled


class _Formatter(string.Formatter):
    def __init__(self, lang: str) -> None:
        self.lang = lang

    def format_field(self, value: Any, format_spec: str) -> str:
        if format_spec == "" or not isinstance(value, (int, float)) or isinstance(value, bool):
            return render_value(value, self.lang)
        return format(value, format_spec)


def render_value(value: Any, lang: str) -> str:
    """A parameter as words: messages said, author texts in the language, numbers as a programmer writes them."""
    if isinstance(value, Message):
        return say(value, lang)
    if isinstance(value, Texts):
        return value.get(lang)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(render_value(v, lang) for v in value)
    return str(value)


def say(message: Message | Texts | str | None, lang: str = DEFAULT) -> str:
    """The message in ``lang``; an id missing there falls back to English, then to the id itself."""
    if message is None:
        return ""
    if isinstance(message, str):
        return message
    if isinstance(message, Texts):
        return message.get(lang)
    if message.id == VERBATIM:
        return render_value(message.params.get("text", ""), lang)
    if message.id == "join":
        parts = (say(p, lang) for p in message.params.get("parts", ()))
        return str(message.params.get("sep", " ")).join(p for p in parts if p)
    lang = language(lang)
    template = lookup(lang, message.id) or lookup(DEFAULT, message.id)
    if template is None:
        return message.id
    try:
        return _Formatter(lang).vformat(template, (), dict(message.params))
    except (KeyError, IndexError, ValueError, AttributeError):  # a translation's slip: the English words instead
        return _Formatter(DEFAULT).vformat(lookup(DEFAULT, message.id) or message.id, (), dict(message.params))


def any_of(items: Iterable[str]) -> Message:
    """Alternatives said with the language's own "or" ("lab-00*.py or lab_00*.py" · "lab-00*.py o lab_00*.py")."""
    listed = list(items)
    if len(listed) < 2:
        return verbatim(listed[0] if listed else "")
    return msg("list.or", items=", ".join(listed[:-1]), last=listed[-1])


def plural(message_id: str, count: int, **params: Any) -> Message:
    """``<id>.one`` or ``<id>.other``: English and Spanish share the rule (one is singular)."""
    return Message(f"{message_id}.{'one' if count == 1 else 'other'}", {"n": count, **params})


def fields(template: str) -> set[str]:
    """The placeholders of a catalogue text, for the completeness test."""
    return {name.split(".")[0].split("[")[0] for _, name, _, _ in string.Formatter().parse(template) if name}


# The language a deliverable is written in: function words that are frequent in one language and rare
# in the other. Two languages, long prose: counting them is dependable (no model, no dependency).
_ENGLISH = frozenset("the and of to is that this it for with are was what when which we i my not be by as "
                     "on have has from an or were would how because then".split())
_SPANISH = frozenset("el la los las y de que es un una por para con del se lo en al como más pero su "
                     "sus este esta mi fue son cuando porque entonces también muy hay".split())
_WORD = re.compile(r"[a-záéíóúñü]+")


def detect(prose: Iterable[str], limit: int = 20_000) -> str:
    """``es``, ``en``, or ``""`` when too little prose says; reads at most ``limit`` characters."""
    seen = 0
    en = es = 0
    for text in prose:
        chunk = text[: max(0, limit - seen)].lower()
        seen += len(chunk)
        for word in _WORD.findall(chunk):
            en += word in _ENGLISH
            es += word in _SPANISH
        if seen >= limit:
            break
    if en + es < 8:
        return ""
    return "es" if es > en else "en"


def as_message(value: Message | Texts | str | None) -> Message | None:
    """Words that are not yet data (a rubric's sentence, an exception's text) carried as a verbatim message."""
    if value is None or isinstance(value, Message):
        return value
    if isinstance(value, Texts):
        return Message(VERBATIM, {"text": value})
    return verbatim(str(value))


def map_strings(message: Message, fn: Any) -> Message:
    """The same message with ``fn`` applied to every text inside it (a file name made printable)."""
    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return fn(value)
        if isinstance(value, Message):
            return Message(value.id, {k: walk(v) for k, v in value.params.items()})
        if isinstance(value, (list, tuple)):
            return [walk(v) for v in value]
        return value
    return walk(message)

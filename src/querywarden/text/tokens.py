"""Words and slots: the shared vocabulary of the text detectors.

A prompt is split into word tokens once. Tokens that name an entity (a date, an amount,
an account or card number, an email address, a capitalised name in mid-sentence, a plain
number) are typed, so a template miner can replace them with a typed slot and a detector
can ask how many *distinct entity values* one template was filled with. The typing is a
handful of cheap character tests, not a model: it runs on every prompt.
"""

from __future__ import annotations

import re

from querywarden.core.records import Interaction

_TOKEN = re.compile(r"[A-Za-z0-9_@.$£€%/:+'-]+|[^\sA-Za-z0-9]")
_DATE = re.compile(
    r"^(\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4}|\d{1,2}\.\d{1,2}\.\d{2,4})$"
    r"|^(jan(uary)?|feb(ruary)?|mar(ch)?|apr(il)?|may|june?|july?|aug(ust)?|sep(t(ember)?)?|oct(ober)?|nov(ember)?"
    r"|dec(ember)?)$",
    re.IGNORECASE,
)
_AMOUNT = re.compile(r"^[$£€]\d[\d,]*(\.\d+)?$|^\d[\d,]*(\.\d+)?[$£€%]$")
_NUMBER = re.compile(r"^[+-]?\d[\d,]*(\.\d+)?$")
_MONTHS = frozenset(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


NAME, ID, DATE, AMOUNT, EMAIL, NUMBER, TERM = "NAME", "ID", "DATE", "AMOUNT", "EMAIL", "NUM", "TERM"
ENTITY_TYPES = frozenset({NAME, ID, DATE, AMOUNT, EMAIL})
"""Slot types that identify a customer, an account or an event: what enumeration walks.
Short plain numbers (quantities, ticket or line numbers) are typed ``NUM`` but left out:
batch jobs number their items, and that says nothing about whom they ask about."""

STOPWORDS = _word_set(
    "a an the and or but if of to in on at for from by with about as is are was were be been being am do "
    "does did i me my we our you your he she it its they them their this that these those what which who "
    "whom whose when where why how can could would should will shall may might must please thanks thank "
    "hi hello hey there here not no yes any all some there's what's i'm it's don't can't just also so "
    "than then too very"
)

_CAPITALISED_COMMON = _word_set(
    "I Please Hi Hello Hey Thanks Thank What How Why When Where Who Which Can Could Would Should Is Are "
    "Do Does Did My The A An And Or But If Ok OK Okay Yes No Also Then So Of In On At For To With From By "
    "Sure Dear Your Our This That It"
)


def tokenize(text: str) -> list[str]:
    """Word tokens (and single punctuation marks) of ``text``, in order."""
    return _TOKEN.findall(text)


def words(text: str) -> list[str]:
    """Lower-cased word tokens without punctuation: what shingles and topics are made of."""
    return [t.lower() for t in _TOKEN.findall(text) if t[0].isalnum()]


def slot_type(token: str, *, sentence_start: bool) -> str | None:
    """The entity type of ``token``, or None when it is an ordinary word.

    A capitalised word counts as a name only away from the start of a sentence, so "Please"
    and "What" stay words.
    """
    t = token.strip(".,:;!?'\"")
    if not t:
        return None
    first = t[0]
    if first.isdigit() or first in "$£€+-":
        if _DATE.match(t):
            return DATE
        if _AMOUNT.match(t):
            return AMOUNT
        if _NUMBER.match(t):
            return NUMBER if len(t.replace(",", "")) < 6 else ID
        if any(c.isdigit() for c in t):
            return ID
        return None
    if t.isalpha():  # most tokens: a month, a name or a plain word
        if t[:3].lower() in _MONTHS and _DATE.match(t) and t.lower() not in ("may", "mar"):
            return DATE
        if first.isupper() and not sentence_start and len(t) > 1 and t[1:].islower() and t not in _CAPITALISED_COMMON:
            return NAME
        return None
    if "@" in t and _EMAIL.match(t):
        return EMAIL
    if sum(c.isdigit() for c in t) >= 2 and len(t) >= 4:
        return ID  # acct_00123, INV-2291, AB12CD
    core = t.replace("'", "").replace("-", "")
    if (
        first.isupper()
        and not sentence_start
        and core.isalpha()
        and not core.isupper()
        and t not in _CAPITALISED_COMMON
    ):
        return NAME  # O'Brien, Jean-Luc
    return None


def user_text(interaction: Interaction) -> str | None:
    """What the caller wrote: the prompt, or the user messages of a chat (not the system prompt).

    Only the latest user turn is read when there are several: earlier turns were already
    seen with the earlier requests of the conversation.
    """
    if interaction.prompt is not None:
        return interaction.prompt
    messages = interaction.messages
    if not messages:
        return None
    for message in reversed(messages):
        if message.get("role", "user") == "user":
            content = message.get("content", "")
            return content if isinstance(content, str) else None
    return None


def system_text(interaction: Interaction) -> str | None:
    """The system (or developer) message a chat request carried, if any."""
    for message in interaction.messages or ():
        if message.get("role") in ("system", "developer"):
            content = message.get("content", "")
            return content if isinstance(content, str) else None
    return None


def output_text(interaction: Interaction) -> str | None:
    out = interaction.output
    return out.text if out is not None and isinstance(out.text, str) else None

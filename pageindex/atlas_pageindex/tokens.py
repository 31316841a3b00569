"""Words for BM25: code and prose split alike, so that a question in English meets the identifiers it names.

    words("getEncodingFromHeaders(self, headers)")  # ['get', 'encoding', 'from', 'header', 'self', 'header']

Identifiers are split at underscores, camelCase and digits, lowercased, and cut to a crude stem (plurals and
-ing/-ed forms), the same for queries and code; English stop words and one-letter tokens are dropped."""

from __future__ import annotations

import re

_RAW = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_PARTS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_IDENTIFIER_QUERY = re.compile(r"^\s*[A-Za-z_][A-Za-z0-9_]*(?:(?:\.|::|#)[A-Za-z_][A-Za-z0-9_]*)*(?:\(\))?\s*$")
STOP = frozenset([
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "could", "do", "does", "for", "from",
    "has", "have", "how", "if", "in", "into", "is", "it", "its", "of", "on", "or", "should", "so", "such", "than",
    "that", "the", "their", "them", "then", "there", "these", "they", "this", "those", "to", "was", "were", "what",
    "when", "where", "which", "while", "who", "will", "with", "would", "you", "your", "given", "return", "returns",
    "returned", "also", "any", "each", "other", "only", "same", "some", "use", "used", "using", "value", "values",
])


def stem(word: str) -> str:
    """A crude stem, enough that "headers" meets "header" and "parsing" meets "parse"."""
    for suffix, keep in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", "e"), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith(("ss", "us", "is")):
                return word
            return word[: len(word) - len(suffix)] + keep
    return word


def words(text: str) -> list[str]:
    out: list[str] = []
    for raw in _RAW.findall(text):
        for part in _PARTS.findall(raw):
            low = part.lower()
            if len(low) > 1 and low not in STOP:
                out.append(stem(low))
    return out


def is_identifier(query: str) -> bool:
    """A query that names code ("parse_header", "Session.request", "Foo::bar()"): BM25 finds it directly."""
    text = query.strip()
    if not _IDENTIFIER_QUERY.match(text):
        return False
    # one plain lowercase word is prose ("sort"), unless it has an underscore or a capital inside
    return bool(re.search(r"[_.#:]|[a-z][A-Z]|^[A-Z][a-z]+[A-Z]", text))


def readable(identifier: str) -> str:
    """An identifier as words, for the embedding model: "getEncoding_from" -> "get encoding from"."""
    return " ".join(p.lower() for raw in _RAW.findall(identifier) for p in _PARTS.findall(raw))

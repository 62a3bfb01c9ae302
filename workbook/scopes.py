"""Read a scope a consumer printed with pprint, and compare two of them key by key."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

# The last top-level line of a pprint-ed dict is the only one that ends in a bare `}`.
SCOPE = re.compile(r"^(\{'.*?\})$", re.MULTILINE | re.DOTALL)
# Who puts each key into the scope, for the keys that routing and AuthMiddlewareStack add.
ADDED_BY = {
    "cookies": "CookieMiddleware (in AuthMiddlewareStack)",
    "session": "SessionMiddleware (in AuthMiddlewareStack)",
    "user": "AuthMiddleware (in AuthMiddlewareStack)",
    "url_route": "URLRouter: what the route matched",
    "path_remaining": "URLRouter: the path left after the match",
}
FROM_THE_SERVER = "daphne itself (channels' test client leaves it out)"


def last_scope(text: str) -> str | None:
    """Return the last pprint-ed scope in a server's output, or None."""
    found = SCOPE.findall(text)
    return found[-1] if found else None


def _top_level_items(body: str) -> list[str]:
    """Split a dict's body at the commas outside brackets and quotes."""
    items, depth, quote, start, i = [], 0, "", 0, 0
    while i < len(body):
        char = body[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            items.append(body[start:i])
            start = i + 1
        i += 1
    return [*items, body[start:]]


def scope_keys(printed: str) -> dict[str, str]:
    """Split a pprint-ed scope into {top-level key: its value as printed, on one line}."""
    body = printed.strip().removeprefix("{").removesuffix("}")
    keys = {}
    for item in _top_level_items(body):
        key, _, value = " ".join(item.split()).partition(": ")
        if key:
            keys[key.strip("'\"")] = value
    return keys


def _short(value: str | None, width: int = 48) -> str:
    if value is None:
        return "—"
    if value.startswith("[(b'"):
        return f"{value.count('(b')} headers"
    value = re.sub(r" at 0x[0-9a-f]+", "", value)
    return value if len(value) <= width else value[: width - 1] + "…"


@dataclass
class ScopeTable:
    """Two scopes side by side, one row per top-level key; Jupyter renders it as an HTML table."""

    before: dict[str, str]
    after: dict[str, str]
    before_label: str
    after_label: str

    def rows(self) -> list[tuple[str, str, str, str]]:
        """Return (key, before, after, who added it) for every key of either scope."""
        def order(key: str) -> tuple[int, int, str]:
            # Keys both scopes have, then what routing and the middleware added, then the rest.
            group = 0 if key in self.before else 1 if key in ADDED_BY else 2
            return (group, list(ADDED_BY).index(key) if group == 1 else 0, key)

        rows = []
        for key in sorted(set(self.before) | set(self.after), key=order):
            old, new = self.before.get(key), self.after.get(key)
            added = ADDED_BY.get(key, FROM_THE_SERVER) if old is None and new is not None else ""
            rows.append((key, _short(old), _short(new), added))
        return rows

    def added(self) -> list[str]:
        """Return the keys only the second scope has."""
        return [key for key in sorted(self.after) if key not in self.before]

    def _repr_html_(self) -> str:
        head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in self.header())
        body = []
        for key, old, new, added in self.rows():
            style = " style='background:#dafbe1'" if key in ADDED_BY and added else ""
            cells = "".join(f"<td style='text-align:left'>{html.escape(c)}</td>" for c in (old, new, added))
            body.append(f"<tr{style}><td style='text-align:left'><code>{key}</code></td>{cells}</tr>")
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"

    def header(self) -> tuple[str, str, str, str]:
        return ("key", self.before_label, self.after_label, "added by")

    def __str__(self) -> str:
        rows = [self.header(), *self.rows()]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)

    __repr__ = __str__


def compare(before: str, after: str, before_label: str = "before", after_label: str = "after") -> ScopeTable:
    """Compare two pprint-ed scopes key by key."""
    return ScopeTable(scope_keys(before), scope_keys(after), before_label, after_label)

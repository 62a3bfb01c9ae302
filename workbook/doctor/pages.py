"""The doctor's rules about the pages: what their scripts open, send and which scheme they use."""

from __future__ import annotations

import re
from pathlib import Path

from .rules import Finding, files_ending


def page_scripts(project: Path) -> dict[str, str]:
    """Return the JavaScript of the project's pages: <script> blocks of templates, and .js files."""
    scripts = {}
    for path in files_ending(project, (".html", ".js")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".html":
            text = "\n".join(re.findall(r"<script\b[^>]*>(.*?)</script>", text, re.DOTALL | re.IGNORECASE))
        if "WebSocket" in text:
            scripts[path.relative_to(project).as_posix()] = text
    return scripts


def socket_facts(scripts: dict[str, str]) -> dict:
    """Read what the pages do with their sockets: the paths they open, what they send, which schemes."""
    facts = {"paths": set(), "plain_sends": [], "sent_keys": [], "insecure_only": []}
    for name, js in scripts.items():
        for arg in re.findall(r"new\s+WebSocket\s*\(([^;]*?)\)\s*;", js):
            # The first literal path is what the routing must match; later pieces are dynamic (a room name).
            facts["paths"] |= set(re.findall(r"['\"`](/[^'\"`$]*)['\"`]", arg)[:1])
        for var in set(re.findall(r"(\w+)\s*=\s*new\s+WebSocket\b", js)):
            for arg in re.findall(rf"\b{var}\.send\(\s*(.*?)\);", js):
                if not arg.startswith("JSON.stringify"):
                    facts["plain_sends"].append(f"{name}: {var}.send({arg})")
                obj = re.match(r"JSON\.stringify\(\s*\{(.*)\}\s*\)$", arg)
                if obj:
                    facts["sent_keys"].append((name, set(re.findall(r"['\"]?(\w+)['\"]?\s*:", obj.group(1)))))
        if re.search(r"['\"`]ws://", js) and "wss" not in js:
            facts["insecure_only"].append(name)
    return facts


def page_findings(pages: dict, consumers: list[dict]) -> list[Finding]:
    """Check what the pages' scripts send and which scheme they use, against what the consumers read."""
    out = []
    if pages["insecure_only"]:
        out.append(Finding(
            "mixed-content", True,
            f"{', '.join(pages['insecure_only'])} always opens ws://: served over https, the browser blocks it",
        ))
    if any(c.get("parses_json") for c in consumers):
        for send in pages["plain_sends"]:
            out.append(Finding(
                "plain-text-frame", True,
                f"{send} sends plain text but the consumer parses JSON: it raises and the socket closes with 1011",
            ))
    wanted = {key for c in consumers for key in c.get("reads_keys", [])}
    for name, keys in pages["sent_keys"]:
        if wanted and not wanted & keys:
            out.append(Finding(
                "missing-message-key", True,
                f"{name} sends {sorted(keys)} but the consumer reads {sorted(wanted)}: KeyError, socket closed 1011",
            ))
    return out

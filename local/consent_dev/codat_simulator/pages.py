"""The simulator's few HTML pages: one small, self-contained, accessible layout (no scripts, no external assets)."""

from __future__ import annotations

import html

from .responses import SimResponse

HTML_CONTENT_TYPE = "text/html; charset=utf-8"

# Link pages carry one-time otps in their URL: never cache them, never leak them in a Referer.
_HEADERS = {
    "Content-Type": HTML_CONTENT_TYPE,
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
}

_STYLE = """
:root { color-scheme: light dark; --accent: #1d4ed8; --muted: #52525b; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 32rem; margin: 10vh auto; padding: 2rem; border: 1px solid #d4d4d8; border-radius: .75rem; }
.eyebrow { margin: 0; color: var(--muted); font-size: .875rem; letter-spacing: .02em; }
h1 { margin: .25rem 0 1rem; font-size: 1.5rem; line-height: 1.25; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: 1rem 0 1.5rem; }
dt { color: var(--muted); } dd { margin: 0; overflow-wrap: anywhere; }
.actions { display: flex; gap: .75rem; flex-wrap: wrap; }
button { font: inherit; padding: .6rem 1.4rem; border-radius: .5rem; border: 2px solid var(--accent); cursor: pointer; }
button.primary { background: var(--accent); color: #fff; }
button.secondary { background: transparent; color: inherit; }
button:focus-visible { outline: 3px solid #f59e0b; outline-offset: 2px; }
.note { color: var(--muted); font-size: .875rem; margin-top: 1.5rem; }
@media (prefers-color-scheme: dark) { :root { --accent: #60a5fa; --muted: #a1a1aa; } main { border-color: #3f3f46; } }
"""


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def page(status: int, title: str, body_html: str, *, headers: dict[str, str] | None = None) -> SimResponse:
    """A complete page; ``title`` is text (escaped here), ``body_html`` is markup the caller already escaped."""
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} · Codat simulator</title><style>{_STYLE}</style></head>"
        '<body><main><p class="eyebrow">Codat simulator · Link</p>'
        f"<h1>{esc(title)}</h1>{body_html}</main></body></html>"
    )
    return SimResponse(status, {**_HEADERS, **(headers or {})}, document.encode())


def details(rows: list[tuple[str, str]]) -> str:
    """A definition list of (label, value) text pairs."""
    return "<dl>" + "".join(f"<dt>{esc(label)}</dt><dd>{esc(value)}</dd>" for label, value in rows) + "</dl>"

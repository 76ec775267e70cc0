"""Render the action's Markdown report as github.com shows a pull-request comment.

usage: python examples/comment_html.py REPORT.md OUT.html

cmark-gfm (cmarkgfm: GitHub's own Markdown library, with the table,
strikethrough, autolink, tasklist and tagfilter extensions), raw HTML kept
and then reduced to the elements GitHub's sanitiser lets through, in a page
whose comment column is 860 px wide, styled close to github.com.  Open the
result in a browser: it is what a maintainer sees.
"""

from __future__ import annotations

import html
import os
import re
import sys

import cmarkgfm
from cmarkgfm.cmark import Options

# What survives GitHub's HTML sanitiser in a comment (the part a report uses).
KEPT = {"a", "b", "blockquote", "br", "code", "del", "details", "div", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
        "i", "li", "ol", "p", "pre", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "th", "thead",
        "tr", "ul"}

STYLE = """
body { margin: 0; background: #f6f8fa; font: 14px/1.5 -apple-system, BlinkMacSystemFont, "Segoe UI", "Noto Sans",
       Helvetica, Arial, sans-serif, "Noto Color Emoji"; color: #1f2328; }
.column { width: 860px; margin: 24px auto; background: #fff; border: 1px solid #d1d9e0; border-radius: 6px; }
.header { padding: 8px 16px; background: #f6f8fa; border-bottom: 1px solid #d1d9e0; border-radius: 6px 6px 0 0;
          color: #59636e; }
.body { padding: 16px; overflow-x: auto; }
h3 { font-size: 1.25em; margin: 0 0 16px; }
code { font: 85% ui-monospace, SFMono-Regular, "SF Mono", Menlo, Consolas, "Liberation Mono", monospace;
       background: rgba(129, 139, 152, .12); padding: .2em .4em; border-radius: 6px; }
table { border-collapse: collapse; margin: 0 0 16px; display: block; width: max-content; max-width: 100%;
        overflow: auto; }
th, td { border: 1px solid #d1d9e0; padding: 6px 13px; }
tr:nth-child(2n) { background: #f6f8fa; }
ul { padding-left: 2em; margin: 0 0 16px; }
details { margin: 0 0 16px; }
summary { cursor: pointer; }
sub { color: #59636e; }
a { color: #0969da; text-decoration: none; }
"""


def sanitise(text: str) -> str:
    """Tags outside :data:`KEPT` are shown as text, as GitHub does; attributes other than href go."""
    def one(m: re.Match) -> str:
        closing, tag, attrs = m.group(1), m.group(2).lower(), m.group(3)
        if tag not in KEPT:
            return html.escape(m.group(0))
        href = re.search(r'\shref="(https?://[^"]*)"', attrs)
        return f"<{closing}{tag}{f' href={chr(34)}{href.group(1)}{chr(34)}' if href and tag == 'a' else ''}>"
    return re.sub(r"<(/?)([A-Za-z][A-Za-z0-9-]*)([^>]*)>", one, text)


def render(markdown: str, title: str = "wheelvet") -> str:
    body = sanitise(cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE))
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><div class=\"column\"><div class=\"header\"><b>github-actions</b> "
            f"bot commented</div><div class=\"body\">{body}</div></div></body></html>\n")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: comment_html.py REPORT.md OUT.html", file=sys.stderr)
        return 2
    src, out = argv
    with open(src, encoding="utf-8") as f:
        page = render(f.read(), os.path.basename(src))
    tmp = f"{out}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(page)
    os.replace(tmp, out)
    print(f"HTML, as github.com shows the comment: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

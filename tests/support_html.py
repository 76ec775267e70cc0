"""HTML as github.com makes it of a comment: cmarkgfm (cmark-gfm, GitHub's own
Markdown library) and a small tree to assert on."""

from __future__ import annotations

from html.parser import HTMLParser

import cmarkgfm
from cmarkgfm.cmark import Options


def github_html(text: str) -> str:
    """cmarkgfm's GitHub preset (table, autolink, tagfilter, ...) keeping raw HTML, as github.com does before sanitizing."""
    return cmarkgfm.github_flavored_markdown_to_html(text, options=Options.CMARK_OPT_UNSAFE)


def unfiltered_html(text: str) -> str:
    """The same without the tagfilter extension: an escaping slip would show as a real tag."""
    return cmarkgfm.markdown_to_html_with_extensions(
        text, options=Options.CMARK_OPT_UNSAFE, extensions=["table", "autolink", "strikethrough", "tasklist"])


class Node:
    def __init__(self, tag: str, attrs: dict) -> None:
        self.tag, self.attrs, self.children = tag, attrs, []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def walk(self):
        for c in self.children:
            if isinstance(c, Node):
                yield c
                yield from c.walk()

    def find(self, tag: str) -> list[Node]:
        return [n for n in self.walk() if n.tag == tag]

    def tags(self) -> set[str]:
        return {n.tag for n in self.walk()}


class _Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.stack = [self.root]
        self.comments: list[str] = []

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        self.stack.append(node)

    def handle_endtag(self, tag):
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data):
        self.stack[-1].children.append(data)

    def handle_comment(self, data):
        self.comments.append(data)


def parse(html_text: str) -> _Tree:
    tree = _Tree()
    tree.feed(html_text)
    tree.close()
    assert tree.stack == [tree.root], "unclosed elements"
    return tree


ALLOWED = {"h3", "p", "table", "thead", "tbody", "tr", "th", "td", "details", "summary", "ul", "li", "code", "strong",
           "sub", "a"}



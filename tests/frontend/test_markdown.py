"""Markdown/plain rendering of user-written text: structure survives, nothing active does."""

import re

from django.template import Context, Template
from django.utils.safestring import SafeString

from frontend.markdown import render_markdown, render_plain


def test_headings_lists_tables_strikethrough():
    html = render_markdown("# Title\n\n- one\n- two\n\n| a | b |\n|---|--:|\n| 1 | 2 |\n\n~~gone~~")
    assert isinstance(html, SafeString)
    assert "<h1>Title</h1>" in html
    assert "<ul>" in html and "<li>one</li>" in html
    assert "<table>" in html and "<th>a</th>" in html and "<td>2</td>" in html
    assert "<s>gone</s>" in html
    assert "style=" not in html  # table alignment styles are not on the allow-list


def test_fenced_python_is_highlighted():
    html = render_markdown("```python\ndef f(x):\n    return x < 2\n```")
    assert '<div class="codehilite"><pre>' in html
    assert '<span class="k">def</span>' in html
    assert '<span class="nf">f</span>' in html
    assert "&lt;" in html  # code text is escaped, not interpreted


def test_unknown_or_absent_language_is_plain_escaped_text():
    for fence in ("```\n", "```nosuchlang\n"):
        html = render_markdown(fence + "<b>x</b>\n```")
        assert '<div class="codehilite">' in html
        assert "&lt;b&gt;x&lt;/b&gt;" in html
        assert "<b>" not in html


def test_raw_script_is_escaped():
    html = render_markdown("hi\n\n<script>alert(1)</script>")
    assert "&lt;script&gt;" in html
    assert "<script" not in html.lower()


def test_raw_img_onerror_is_inert():
    html = render_markdown('<img src=x onerror=alert(1)>\n\ninline <img src=x onerror="alert(1)"> too')
    assert "<img" not in html.lower()
    assert "&lt;img" in html
    assert not re.search(r"<[^>]*onerror", html, re.I)  # only ever as escaped text


def test_markdown_image_is_dropped_but_alt_text_kept():
    html = render_markdown("see ![a chart](https://tracker.example/p.png)")
    assert "<img" not in html.lower()
    assert "tracker.example" not in html
    assert "a chart" in html


def test_javascript_link_has_no_href():
    for src in ("[x](javascript:alert(1))", "[x](JaVaScRiPt:alert(1))", "<javascript:alert(1)>"):
        html = render_markdown(src)
        assert 'href="javascript:' not in html.lower()


def test_sanitiser_alone_strips_what_the_parser_would_never_emit():
    # Defence in depth: even HTML that bypassed markdown-it is cleaned by nh3.
    from frontend.markdown import _clean

    out = _clean('<a href="javascript:alert(1)" onclick="x" target="_blank">a</a><img src=x><script>b()</script>')
    assert "javascript:" not in out and "onclick" not in out and "target=" not in out
    assert "<img" not in out and "<script" not in out


def test_https_link_keeps_href_and_gets_rel():
    html = render_markdown('[docs](https://example.com/a?b=1 "Docs")')
    assert 'href="https://example.com/a?b=1"' in html
    assert 'title="Docs"' in html
    assert "noopener" in html and "noreferrer" in html and "nofollow" in html
    assert "target=" not in html


def test_markdown_filter_through_template_engine():
    out = Template("{% load preflab_markup %}{{ t|markdown }}").render(
        Context({"t": "**bold** <script>x</script>"})
    )
    assert "<strong>bold</strong>" in out
    assert "&lt;script&gt;" in out and "<script" not in out
    # Not double-escaped by autoescape: the filter returns SafeString.
    assert "&amp;lt;" not in out


def test_plaintext_filter_and_none():
    out = Template("{% load preflab_markup %}{{ t|plaintext }}|{{ n|markdown }}").render(
        Context({"t": "a\nb", "n": None})
    )
    assert out == "a<br>\nb|"


def test_render_plain_escapes_and_keeps_line_breaks():
    html = render_plain("<b>bold</b>\r\nline two\nthree **not md**")
    assert isinstance(html, SafeString)
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "<b>" not in html
    assert html.count("<br>") == 2
    assert "**not md**" in html

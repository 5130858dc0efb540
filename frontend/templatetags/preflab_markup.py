"""Template filters for user-written text: ``{{ text|markdown }}`` and ``{{ text|plaintext }}``.

Both return SafeString built by frontend.markdown, which escapes and sanitises the
input itself; the filters are deliberately not ``is_safe`` so Django never trusts
anything but that output.
"""

from django import template

from frontend.markdown import render_markdown, render_plain

register = template.Library()


@register.filter(name="markdown")
def markdown_filter(value):
    # None (e.g. an empty optional field) renders as nothing, not as "None".
    return render_markdown("" if value is None else str(value))


@register.filter(name="plaintext")
def plaintext_filter(value):
    return render_plain("" if value is None else str(value))

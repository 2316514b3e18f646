"""{% key_guides %}: links to every offered exchange's API key guide, for pages seen before
signing up (home, sign-up), so a newcomer can prepare a key first."""

from __future__ import annotations

from django import template

from exchanges import registry

register = template.Library()


@register.inclusion_tag("exchanges/_key_guides.html")
def key_guides() -> dict:
    return {"venues": registry.venues()}

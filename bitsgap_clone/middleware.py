from __future__ import annotations

from django.http import HttpRequest, HttpResponse


class HtmxRedirectMiddleware:
    """An htmx request answered with a redirect (login expired, re-authentication needed)
    navigates the whole page instead of swapping the login form into a fragment."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        htmx = getattr(request, "htmx", None)
        if htmx and response.status_code in (301, 302, 303, 307, 308) and "HX-Redirect" not in response:
            return HttpResponse(status=204, headers={"HX-Redirect": response["Location"]})
        return response

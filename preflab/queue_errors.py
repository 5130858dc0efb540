"""Pages that queue a job, when the broker is down (``annotate.jobs``): the job is
already failed with its message; show that message on the page the form came from
instead of a 500. The API needs nothing here: DRF answers the exception as a 503."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme

from annotate.jobs import JobQueueUnavailable


class JobQueueErrorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, JobQueueUnavailable):
            return None
        text = f"Not queued: {exception.detail}."
        back = request.headers.get("Referer", "")
        if back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()},
                                                    require_https=request.is_secure()):
            messages.error(request, text)
            return redirect(back)
        return HttpResponse(text, status=503, content_type="text/plain; charset=utf-8")

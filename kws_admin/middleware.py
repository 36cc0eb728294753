import time

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect

from core.audit import audit_request
from core.locks import Locked


class HtmxLoginRedirectMiddleware:
    """Sends the whole page to the login (or the password change) when an htmx fragment
    request is redirected there: htmx would follow the redirect and swap the login page
    into the fragment (the header polls every 2 s, and a session may expire meanwhile).
    Boosted requests swap the whole body and are left alone. Placed before the
    middleware that redirects, so it sees their answer."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        fragment = request.headers.get("HX-Request") == "true" and not request.headers.get(
            "HX-Boosted"
        )
        if fragment and response.status_code == 302:
            location = response["Location"]
            targets = (reverse(settings.LOGIN_URL), reverse("password_change"))
            if location.startswith(targets):
                return HttpResponseClientRedirect(location)
        return response


class IdleSessionMiddleware:
    """Ends a session after ``SESSION_IDLE_SECONDS`` without the administrator doing
    anything. The requests a page makes by itself (htmx polling, marked ``X-KWS-Poll``)
    do not count as activity, or an open Status page would keep a session for ever.

    The activity stamp is rewritten only once it is ``resolution()`` old: each rewrite
    is a session write (three queries), and typing in a search box sends a request per
    pause. A session therefore ends between the idle time and the idle time plus the
    resolution after the last action, never earlier."""

    ACTIVE = "kws_active_at"

    def __init__(self, get_response):
        self.get_response = get_response

    @staticmethod
    def resolution() -> float:
        """How stale the stamp may get: a tenth of the idle time, at most a minute."""
        return min(60.0, settings.SESSION_IDLE_SECONDS / 10)

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            now = time.time()
            last = request.session.get(self.ACTIVE)
            resolution = self.resolution()
            if last is not None and now - last > settings.SESSION_IDLE_SECONDS + resolution:
                logout(request)
                return redirect_to_login(request.get_full_path())
            active = request.headers.get("X-KWS-Poll") != "1"
            if last is None or (active and now - last >= resolution):
                request.session[self.ACTIVE] = now
        return self.get_response(request)


class AuditContextMiddleware:
    """Attributes the audit records a request makes to its account and client address
    (``core.audit``); after the authentication middleware, which sets the account."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with audit_request(request):
            return self.get_response(request)


class LockedMiddleware:
    """Answers a write refused by the configuration lock with HTTP 423 and the reason."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, Locked):
            return None
        if request.htmx:
            return render(
                request, "kws_admin/partials/locked.html", {"reason": exception.reason}, status=423
            )
        return render(request, "kws_admin/locked.html", {"reason": exception.reason}, status=423)

"""A small cookie-keeping HTTP client for talking to real node processes."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass


@dataclass
class Response:
    status: int
    url: str
    text: str


class Browser:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def request(self, method: str, path: str, data: dict | None = None, headers=None) -> Response:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(
            self.base_url + path, data=body, method=method, headers=headers or {}
        )
        if method == "POST":
            req.add_header("X-CSRFToken", self.csrf_token())
            req.add_header("Referer", self.base_url + path)
        try:
            with self.opener.open(req, timeout=10) as resp:
                return Response(resp.status, resp.url, resp.read().decode())
        except urllib.error.HTTPError as exc:
            return Response(exc.code, exc.url, exc.read().decode())

    def get(self, path: str, **kw) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, data: dict, **kw) -> Response:
        return self.request("POST", path, data=data, **kw)

    def csrf_token(self) -> str:
        for cookie in self.cookies:
            if cookie.name.startswith("kws_csrf"):
                return cookie.value
        page = self.get("/login/").text
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        return match.group(1) if match else ""

    def login(self, username: str, password: str, *, new_password: str = "") -> None:
        """Log in; change an initial password to ``new_password`` when asked to, and
        try ``new_password`` if ``password`` was already changed (accounts replicate)."""
        self.get("/login/")
        self.password = password  # the password that signs in now (see the scenarios)
        resp = self.post("/login/", {"username": username, "password": password})
        if "/login/" in resp.url and new_password:
            resp = self.post("/login/", {"username": username, "password": new_password})
            self.password = new_password
        if resp.url.endswith("/password/") and new_password:
            resp = self.post(
                "/password/",
                {"old_password": password, "new_password1": new_password,
                 "new_password2": new_password},
            )  # fmt: skip
            self.password = new_password
        if "/login/" in resp.url or "/password/" in resp.url:
            raise AssertionError(f"login as {username} failed: {resp.status} {resp.url}")

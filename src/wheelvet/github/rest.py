"""GitHub's REST API through PyGithub: the client, and what its failures mean.

Every call the action makes to the REST API goes through :func:`make_client`
and inside :func:`calling`, which turns each way a call can fail into one
line that holds no secret:

* GitHub answered with an error status (:class:`RestRefused`, with the
  status; :attr:`RestRefused.not_allowed` tells a token that may not do this,
  such as a fork's read-only one, from other refusals);
* GitHub could not be reached (refused connection, DNS, TLS, timeout):
  :class:`RestUnreachable`;
* the answer is not the API's JSON (a proxy's or a captive portal's page,
  a truncated body): :class:`RestMalformed`.

All three are :class:`~wheelvet.errors.ServiceError` (exit 5).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import urlsplit

from ..errors import MissingExtra, ServiceError

try:  # PyGithub comes with wheelvet[action]; the command line installs without it
    import requests
    from github import Auth, Github, GithubException
except ImportError:
    raise MissingExtra("wheelvet action", "action", "PyGithub") from None


class RestError(ServiceError):
    """A REST API call failed (one line, no secret)."""


class RestRefused(RestError):
    def __init__(self, what: str, status: int, message: str | None) -> None:
        self.status = status
        self.reason = f"GitHub answered {status}{': ' + message if message else ''}"
        super().__init__(f"{what}: {self.reason}")

    @property
    def not_allowed(self) -> bool:
        """The token may not do this (403: a fork's read-only token, a missing
        permission; 404: what a token that may not see a resource gets)."""
        return self.status in (403, 404)


class RestUnreachable(RestError):
    pass


class RestMalformed(RestError):
    pass


def make_client(api_url: str, token: str, *, timeout: int = 20, retries: int = 3, lazy: bool = True) -> Github:
    """PyGithub for ``api_url``; ``lazy`` objects make no request until used (the comment's
    calls), eager ones fetch what they name (the Actions API, whose lists need the objects' URLs)."""
    return Github(base_url=api_url, auth=Auth.Token(token), timeout=timeout, retry=retries, lazy=lazy,
                  seconds_between_requests=0, seconds_between_writes=0)


def _message(exc: GithubException) -> str | None:
    data = exc.data
    message = data.get("message") if isinstance(data, dict) else None
    return message[:200] if isinstance(message, str) and message else None


def _reason(exc: requests.exceptions.RequestException) -> str:
    """Why a request did not reach GitHub, in a few words (never the URL's
    query or a header: requests' own messages repeat the request)."""
    kinds = [(requests.exceptions.SSLError, "TLS failed"), (requests.exceptions.ConnectTimeout, "connection timed out"),
             (requests.exceptions.ReadTimeout, "no answer in time"),
             (requests.exceptions.ConnectionError, "connection refused or host unknown"),
             (requests.exceptions.TooManyRedirects, "too many redirects")]
    return next((why for kind, why in kinds if isinstance(exc, kind)), type(exc).__name__)


@contextmanager
def calling(what: str, api_url: str = "") -> Iterator[None]:
    """Run REST calls; each failure becomes a :class:`RestError` whose
    message starts with ``what`` (``could not post the pull-request comment``)."""
    try:
        yield
    except GithubException as exc:
        raise RestRefused(what, exc.status, _message(exc)) from None
    except requests.exceptions.RequestException as exc:
        host = urlsplit(api_url).hostname if api_url else None
        raise RestUnreachable(f"{what}: GitHub{' at ' + host if host else ''} could not be reached "
                              f"({_reason(exc)})") from None
    except (json.JSONDecodeError, TypeError, KeyError, AttributeError) as exc:
        # PyGithub builds its objects from the answer's JSON: an answer that is
        # not the API's (an HTML page with status 200) fails while it does.
        raise RestMalformed(f"{what}: GitHub's answer is not its API's JSON "
                            f"({type(exc).__name__}; a proxy's page or a wrong api-url?)") from None


__all__ = ["RestError", "RestMalformed", "RestRefused", "RestUnreachable", "calling", "make_client"]

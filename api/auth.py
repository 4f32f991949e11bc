"""Stopgap access control for the staff and editor APIs, until accounts and roles exist.

One bearer token from the settings (``MADOGUCHI_API_TOKEN``; unset, those APIs are
disabled) and the person's name from the ``X-Madoguchi-User`` header, for the audit log.
Resident routes stay anonymous.
"""

from __future__ import annotations

import hmac
import re
from typing import Annotated

from fastapi import Depends, Header, HTTPException

from api.deps import AppSettings

USER_PATTERN = re.compile(r"^[\w.@-]{1,64}$")


def current_user(
    settings: AppSettings,
    authorization: Annotated[str | None, Header()] = None,
    x_madoguchi_user: Annotated[str | None, Header()] = None,
) -> str:
    if not settings.api_token:
        raise HTTPException(
            503, detail="the staff and editor APIs are disabled: set MADOGUCHI_API_TOKEN"
        )
    scheme, _, token = (authorization or "").partition(" ")
    # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError, a 500).
    given, expected = (t.encode("utf-8", "surrogateescape") for t in (token, settings.api_token))
    if scheme.lower() != "bearer" or not hmac.compare_digest(given, expected):
        raise HTTPException(
            401, detail="a valid API token is required", headers={"WWW-Authenticate": "Bearer"}
        )
    if not x_madoguchi_user or not USER_PATTERN.fullmatch(x_madoguchi_user):
        raise HTTPException(400, detail="the X-Madoguchi-User header must name the user")
    return x_madoguchi_user


CurrentUser = Annotated[str, Depends(current_user)]

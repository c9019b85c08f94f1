"""The API's bearer token: API_TOKEN from the environment, required in prod, compared in constant time."""

import secrets
from collections.abc import Callable, Mapping
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from coin_platform.settings import API_KEY_PATTERN, ConfigError, Settings

TOKEN_VARIABLE = "API_TOKEN"
MIN_TOKEN_LENGTH = 32


def api_token(settings: Settings, environ: Mapping[str, str]) -> str | None:
    """The token every endpoint but /health asks for: API_TOKEN when set (it must be set in prod)."""
    token = environ.get(TOKEN_VARIABLE) or None
    if token is None:
        if settings.api_token_required:
            raise ConfigError(
                f"{TOKEN_VARIABLE} is not set: in prod the API requires a bearer token; "
                f"set {TOKEN_VARIABLE} in the environment, e.g. to the output of `openssl rand -hex 32`"
            )
        return None
    if len(token) < MIN_TOKEN_LENGTH or not API_KEY_PATTERN.match(token):
        raise ConfigError(
            f"{TOKEN_VARIABLE} must be at least {MIN_TOKEN_LENGTH} printable ASCII characters without spaces, "
            "e.g. the output of `openssl rand -hex 32` (the value is not shown)"
        )
    return token


def bearer_guard(token: str) -> Callable[..., None]:
    """A dependency that answers 401 unless the request carries `Authorization: Bearer <token>`."""
    expected = token.encode()
    scheme = HTTPBearer(auto_error=False, description=f"the value of {TOKEN_VARIABLE}")

    def require_token(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(scheme)]) -> None:
        given = credentials.credentials.encode() if credentials else b""
        if not secrets.compare_digest(given, expected):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail=f"a valid bearer token is required: Authorization: Bearer <{TOKEN_VARIABLE}>",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return require_token

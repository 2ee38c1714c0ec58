"""Earth Engine project and credentials from the environment (secrets are never logged)."""

from __future__ import annotations

import ipaddress
import os
from typing import Any
from urllib.parse import urlparse

from pipeline.errors import CredentialsError

AUTH_HELP = (
    "Authenticate once with `earthengine authenticate` (then set sentinel.gee.project or "
    "$EE_PROJECT to your Earth Engine-enabled Cloud project), or point $EE_SERVICE_ACCOUNT_KEY "
    "(or $GOOGLE_APPLICATION_CREDENTIALS) at a service-account JSON key and set $EE_PROJECT. "
    "To build without Earth Engine use the offline source: --config sentinel='{source: local}' "
    "(sentinel.source: local in the config)."
)

def _is_loopback_url(url: str | None) -> bool:
    if not url:
        return False
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_project(configured: str | None) -> str | None:
    """Project id: config value, else $EE_PROJECT, else $GOOGLE_CLOUD_PROJECT (else None)."""
    return configured or os.environ.get("EE_PROJECT") or os.environ.get("GOOGLE_CLOUD_PROJECT")


def resolve_credentials(ee: Any, api_url: str | None) -> tuple[Any, str | None]:
    """(credentials, project from the key or None) from the environment.

    Order: service-account key ($EE_SERVICE_ACCOUNT_KEY, $GOOGLE_APPLICATION_CREDENTIALS),
    anonymous for a loopback ``api_url`` (local fake / proxy), else the persistent credentials
    of ``earthengine authenticate`` (or application-default credentials).

    Raises:
        CredentialsError: nothing usable found (message says how to authenticate).
    """
    for var in ("EE_SERVICE_ACCOUNT_KEY", "GOOGLE_APPLICATION_CREDENTIALS"):
        path = os.environ.get(var)
        if not path:
            continue
        if not os.path.isfile(path):
            raise CredentialsError(
                f"${var} points to {path!r}, which is not a file: fix the path to your "
                f"service-account JSON key. {AUTH_HELP}"
            )
        try:
            import json

            with open(path) as f:
                key_project = json.load(f).get("project_id")
            creds = ee.ServiceAccountCredentials(None, key_file=path)
        except Exception as exc:  # never echo key contents
            raise CredentialsError(
                f"${var} ({path}) is not a valid service-account key ({type(exc).__name__}). "
                f"{AUTH_HELP}"
            ) from None
        return creds, key_project
    if _is_loopback_url(api_url):
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials(), None
    try:
        return ee.data.get_persistent_credentials(), None
    except Exception:  # EEException / google.auth errors
        raise CredentialsError(f"no Earth Engine credentials found. {AUTH_HELP}") from None



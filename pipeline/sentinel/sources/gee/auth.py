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
    "(or $GOOGLE_APPLICATION_CREDENTIALS) at a service-account JSON key, gcloud's "
    "application_default_credentials.json or a workload-identity config and set $EE_PROJECT. "
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


#: Scopes requested for credentials built from a key or ADC file.
EE_SCOPES = (
    "https://www.googleapis.com/auth/earthengine",
    "https://www.googleapis.com/auth/cloud-platform",
)


def _adc_file() -> str | None:
    """The gcloud application-default-credentials file, if there is one."""
    base = os.environ.get("CLOUDSDK_CONFIG") or os.path.expanduser("~/.config/gcloud")
    path = os.path.join(base, "application_default_credentials.json")
    return path if os.path.isfile(path) else None


def _on_gcp() -> bool:
    """Whether to ask the cloud metadata server for credentials: only when told so
    ($GCE_METADATA_HOST / $GCE_METADATA_IP, as set on Google Cloud runtimes, or
    $EE_USE_METADATA_SERVER=1); never as a blind probe of 169.254.169.254."""
    return bool(os.environ.get("GCE_METADATA_HOST") or os.environ.get("GCE_METADATA_IP")
                or os.environ.get("EE_USE_METADATA_SERVER") == "1")


def _from_file(var: str, path: str) -> tuple[Any, str | None]:
    """Credentials of a JSON credentials file of any Google type: ``service_account`` keys,
    ``authorized_user`` (gcloud ADC), ``external_account`` (workload identity federation),
    ``impersonated_service_account``. Returns (credentials, project or None)."""
    import json

    try:
        with open(path) as f:
            info = json.load(f)
        kind = str(info.get("type", ""))
    except Exception as exc:  # never echo file contents
        raise CredentialsError(f"${var} ({path}) is not a JSON credentials file "
                               f"({type(exc).__name__}). {AUTH_HELP}") from None
    try:
        if kind == "external_account":  # built offline (google.auth.default would ask STS)
            import importlib

            src = info.get("credential_source", {})
            name = ("aws" if str(src.get("environment_id", "")).startswith("aws")
                    else "pluggable" if "executable" in src else "identity_pool")
            module: Any = importlib.import_module(f"google.auth.{name}")
            creds = module.Credentials.from_info(info, scopes=list(EE_SCOPES))
            project = None
        else:
            import google.auth

            # a user's refresh token (gcloud ADC, ``authorized_user``) carries the scopes it
            # was granted; asking for others on refresh gets ``invalid_scope``, so it is loaded
            # without scopes, as earthengine-api's google.auth.default() does
            scopes = None if kind == "authorized_user" else list(EE_SCOPES)
            creds, project = google.auth.load_credentials_from_file(path, scopes=scopes)
    except Exception as exc:
        raise CredentialsError(
            f"${var} ({path}) holds '{kind or 'unknown'}' credentials that cannot be loaded "
            f"({type(exc).__name__}): use a service-account key, gcloud's "
            f"application_default_credentials.json or a workload-identity config. {AUTH_HELP}"
        ) from None
    project = project or info.get("project_id") or info.get("quota_project_id")
    return creds, project


def resolve_credentials(ee: Any, api_url: str | None) -> tuple[Any, str | None]:
    """(credentials, project from the credentials or None) from the environment.

    Order: a credentials file ($EE_SERVICE_ACCOUNT_KEY, $GOOGLE_APPLICATION_CREDENTIALS: a
    service-account key, an authorized-user (gcloud ADC) or an external-account file),
    anonymous for a loopback ``api_url`` (local fake / proxy), else the persistent credentials
    of ``earthengine authenticate`` or gcloud's application-default credentials. The cloud
    metadata server is asked only on Google Cloud (:func:`_on_gcp`).

    Raises:
        CredentialsError: nothing usable found (message says how to authenticate).
    """
    for var in ("EE_SERVICE_ACCOUNT_KEY", "GOOGLE_APPLICATION_CREDENTIALS"):
        path = os.environ.get(var)
        if not path:
            continue
        if path.lstrip().startswith("{"):  # the key itself, not its path: never echo it
            raise CredentialsError(
                f"${var} holds the key's JSON content instead of a path to the key file: save "
                f"the JSON to a file readable only by you and set ${var} to its path. "
                f"{AUTH_HELP}"
            )
        if not os.path.isfile(path):
            raise CredentialsError(
                f"${var} points to {path!r}, which is not a file: fix the path to your "
                f"service-account JSON key or credentials file. {AUTH_HELP}"
            )
        return _from_file(var, path)
    if _is_loopback_url(api_url):
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials(), None
    stored = os.path.isfile(os.path.expanduser("~/.config/earthengine/credentials"))
    if not (stored or _adc_file() or _on_gcp()):
        # nothing on disk: say so now instead of letting google.auth probe the network
        raise CredentialsError(f"no Earth Engine credentials found. {AUTH_HELP}")
    try:
        return ee.data.get_persistent_credentials(), None
    except Exception:  # EEException / google.auth errors
        raise CredentialsError(f"no Earth Engine credentials found. {AUTH_HELP}") from None

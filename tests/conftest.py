"""Project-wide test configuration.

* Socket guard: any connection to a non-loopback address fails the test (Earth Engine and
  every other remote must be faked on 127.0.0.1).
* Markers: ``gee_live`` tests are skipped without Earth Engine credentials in the default run
  and fail without them when asked for (``-m gee_live``); ``gpu`` tests are skipped without
  CUDA.
"""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _is_loopback(address: object) -> bool:
    if isinstance(address, tuple) and address:
        host = address[0]
    else:  # AF_UNIX path etc.
        return True
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class NetworkAccessError(RuntimeError):
    pass


def _guarded_connect(self: socket.socket, address: object) -> object:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
        raise NetworkAccessError(f"test tried a non-loopback connection to {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> object:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
        raise NetworkAccessError(f"test tried a non-loopback connection to {address!r}")
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
    if host not in (None, "localhost") and not _is_loopback((host,)):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise NetworkAccessError(f"test tried to resolve a remote host {host!r}") from None
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True)
def _socket_guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if (request.node.get_closest_marker("gee_live") is not None
            or request.node.get_closest_marker("cdse_live") is not None):
        return  # the live tests talk to the real Earth Engine / CDSE
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", _guarded_getaddrinfo)


@pytest.fixture(scope="module")
def torch_one_thread():  # type: ignore[no-untyped-def]
    """One torch intra-op thread for a test module: the CI box is small and shared, and
    oversubscribed torch threads are much slower there. Use with
    ``pytestmark = pytest.mark.usefixtures("torch_one_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def ee_credentials_found() -> bool:
    """Credentials in any form earthengine-api accepts: a key or credentials file named by
    $EE_SERVICE_ACCOUNT_KEY / $GOOGLE_APPLICATION_CREDENTIALS, the file `earthengine
    authenticate` writes, or gcloud's application-default credentials."""
    files = [os.environ.get("EE_SERVICE_ACCOUNT_KEY"),
             os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"),
             os.path.expanduser("~/.config/earthengine/credentials"),
             os.path.join(os.environ.get("CLOUDSDK_CONFIG")
                          or os.path.expanduser("~/.config/gcloud"),
                          "application_default_credentials.json")]
    return any(f and os.path.isfile(f) for f in files)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # asked for (-m gee_live): the live test runs and fails without credentials, saying how to
    # provide them; in the default run it is left out (skipped) without them
    asked = "gee_live" in str(config.getoption("markexpr", "") or "")
    has_ee_creds = asked or ee_credentials_found()
    has_gpu = False
    if any("gpu" in item.keywords for item in items):
        try:
            import torch

            has_gpu = bool(torch.cuda.is_available())
        except Exception:
            has_gpu = False
    cdse_asked = "cdse_live" in str(config.getoption("markexpr", "") or "")
    for item in items:
        if "cdse_live" in item.keywords and not cdse_asked:
            item.add_marker(pytest.mark.skip(
                reason="live CDSE test (run `pytest -m cdse_live` with your CDSE S3 keys)"))
        if "gee_live" in item.keywords and not has_ee_creds:
            item.add_marker(pytest.mark.skip(
                reason="no Earth Engine credentials (run `pytest -m gee_live` to be told how)"))
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(pytest.mark.skip(reason="no CUDA GPU"))
    # files with `slow` tests first (order within a file and among the rest kept): pytest-xdist
    # (scripts/test.sh, --dist loadfile) hands files to workers in this order, so the longest
    # ones start early instead of running alone at the end
    slow_files = {item.path for item in items if "slow" in item.keywords}
    items.sort(key=lambda item: item.path not in slow_files)


@pytest.fixture(scope="session")
def equivalence_archive(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The cross-source scene archive of tests/equivalence_helpers.py, built once per session
    (the equivalence tests and the evaluating fake's tests read the same scenes)."""
    from tests.equivalence_helpers import build_archive

    return build_archive(tmp_path_factory.mktemp("equivalence"))

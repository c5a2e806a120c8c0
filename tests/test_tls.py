"""TLS for the gateway (--ssl-certfile/--ssl-keyfile): https and wss with a throw-away CA made here by openssl.

The Python client trusts the CA through an ``ssl.SSLContext``; Chromium trusts the server's key
through ``--ignore-certificate-errors-spki-list`` (and refuses the page without it).
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from spark_gateway.config import Settings
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, GatewayProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SECRET = "tls-s3cret"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key): a CA, and a certificate it signed for 127.0.0.1/localhost."""
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=spark-gateway test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=directory)
    (directory / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                                          "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "server.ext", cwd=directory)
    return directory / "ca.pem", directory / "server.pem", directory / "server.key"


def spki_hash(certificate: Path) -> str:
    """base64(sha256(SubjectPublicKeyInfo)) of a certificate: what Chromium's SPKI list takes."""
    der = ssl.PEM_cert_to_DER_cert(certificate.read_text())
    public = subprocess.run(["openssl", "x509", "-inform", "der", "-pubkey", "-noout"], input=der,
                            capture_output=True, check=True, timeout=30).stdout
    spki = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=public,
                          capture_output=True, check=True, timeout=30).stdout
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


class TlsGateway(GatewayProcess):
    """A gateway serving https and wss, checked with a context that trusts the test CA."""

    def __init__(self, remote: str, ca: Path, certificate: Path, key: Path) -> None:
        self.context = ssl.create_default_context(cafile=str(ca))
        super().__init__(remote, "--ssl-certfile", str(certificate), "--ssl-keyfile", str(key), "--token",
                         f"alice:{SECRET}")

    @property
    def http_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"wss://127.0.0.1:{self.port}/ws"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (Debian: apt-get install -y openssl)")
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_gateway(spark_remote: str, certificates: tuple[Path, Path, Path]) -> Iterator[TlsGateway]:
    process = TlsGateway(spark_remote, *certificates)
    yield process
    process.stop()


async def test_the_python_client_runs_sql_over_wss(tls_gateway: TlsGateway) -> None:
    """The Python client, trusting the CA, opens a session over wss and gets rows."""
    from spark_gateway_client import connect

    async with connect(tls_gateway.ws_url, token=SECRET, ssl=tls_gateway.context) as session:
        assert await session.sql("SELECT 'over tls' AS s, 6 * 7 AS n").rows() == [["over tls", 42]]


async def test_clients_that_do_not_trust_the_certificate_are_refused(tls_gateway: TlsGateway) -> None:
    """Without the CA, certificate verification fails; plain ws:// to the TLS port gets no session."""
    from spark_gateway_client import GatewayConnectionError, connect

    with pytest.raises(GatewayConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        await connect(tls_gateway.ws_url, token=SECRET, resume=False)
    with pytest.raises(GatewayConnectionError):
        await connect(f"ws://127.0.0.1:{tls_gateway.port}/ws", token=SECRET, resume=False, open_timeout=5)


def test_the_banner_names_https_and_wss(tls_gateway: TlsGateway) -> None:
    """What `serve` prints at start points to https:// and wss://."""
    log = tls_gateway.log_path.read_text()
    assert f"https://localhost:{tls_gateway.port}/" in log and f"wss://localhost:{tls_gateway.port}/ws" in log


def test_certificate_and_key_go_together(certificates: tuple[Path, Path, Path]) -> None:
    """One without the other, or a missing file, is refused at start with a message naming it."""
    _, certificate, key = certificates
    with pytest.raises(ValueError, match="go together"):
        Settings(ssl_certfile=str(certificate))
    with pytest.raises(ValueError, match="ssl_keyfile: no such file"):
        Settings(ssl_certfile=str(certificate), ssl_keyfile=str(key) + ".missing")


def test_non_loopback_still_requires_a_token_with_tls(certificates: tuple[Path, Path, Path]) -> None:
    """TLS changes nothing of the token rule: a non-loopback gateway without --token generates one."""
    from spark_gateway import auth

    _, certificate, key = certificates
    settings = Settings(host="0.0.0.0", ssl_certfile=str(certificate), ssl_keyfile=str(key))
    with_token, generated = auth.ensure_token(settings)
    assert generated is not None and auth.policy(with_token).required
    assert any(line.startswith("spark-gateway: open https://") for line in auth.banner(with_token, generated))


@pytest.mark.browser
def test_the_browser_trusting_the_key_connects_over_wss(tls_gateway: TlsGateway,
                                                         certificates: tuple[Path, Path, Path]) -> None:
    """Chromium trusting the server's key loads the notebook over https and connects over wss; without it, refuses."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    url = f"{tls_gateway.http_url}/#token={SECRET}"
    pin = f"--ignore-certificate-errors-spki-list={spki_hash(certificates[1])}"
    with playwright_api.sync_playwright() as p:
        untrusting = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            with pytest.raises(playwright_api.Error, match="ERR_CERT_AUTHORITY_INVALID"):
                untrusting.new_page().goto(url)
        finally:
            untrusting.close()
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, pin])
        try:
            page = browser.new_page()
            page.goto(url)
            playwright_api.expect(page.locator("#connection")).to_have_attribute(
                "data-state", "connected", timeout=30_000)
            assert page.evaluate("location.protocol") == "https:"
        finally:
            browser.close()

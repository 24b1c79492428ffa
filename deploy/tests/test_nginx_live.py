"""deploy/nginx/nginx.conf run by a real nginx in front of a loopback upstream.

The file is run as it is, with only what cannot exist here rewritten: ports (ephemeral instead of 80, 443 and
8000), the upstream (a loopback server instead of the Compose service ``web``), file paths (a temporary prefix),
the ``user`` directive and ``http2 on`` (Debian's nginx predates that directive; the listen line is unchanged).
"""

import datetime
import gzip
import ipaddress
import json
import re
import shutil
import socket
import subprocess  # nosec B404: runs nginx, a fixed binary, with arguments built here
import time
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from deploy.tests.support import DEPLOY

BIG_JSON = json.dumps({"results": [{"id": n, "first_name": "Ada", "email": f"a{n}@school.example"} for n in range(80)]})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _self_signed(directory: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (directory / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "tls.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def _rewrite(conf: str, *, prefix: Path, upstream: int, ports: dict[int, int]) -> str:
    conf = re.sub(r"^user \w+;\n", "", conf, flags=re.M)
    conf = conf.replace("pid /tmp/nginx.pid;", f"pid {prefix}/nginx.pid;")
    conf = conf.replace("/tmp/nginx-", f"{prefix}/nginx-")  # noqa: S108 (the path being replaced)
    conf = conf.replace("access_log /dev/stdout json;", f"access_log {prefix}/access.log json;")
    conf = conf.replace("/etc/nginx/certs/", f"{prefix}/certs/")
    conf = re.sub(r"^\s*http2 on;\n", "", conf, flags=re.M)
    conf = conf.replace("server web:8000;", f"server 127.0.0.1:{upstream};")
    for original, port in ports.items():
        conf = re.sub(rf"listen {original}\b", f"listen 127.0.0.1:{port}", conf)
        conf = re.sub(rf"^(\s*){original} https;", rf"\g<1>{port} https;", conf, flags=re.M)  # the scheme map
    return conf


@pytest.fixture(scope="module")
def upstream():
    """Stands in for gunicorn: a large JSON body, and the headers nginx sent, echoed back."""
    server = HTTPServer(host="127.0.0.1", port=0)

    def handler(request: Request) -> Response:
        seen = {name: request.headers.get(name, "") for name in ("Host", "X-Forwarded-Proto", "X-Forwarded-For")}
        return Response(BIG_JSON, content_type="application/json", headers={"X-Seen": json.dumps(seen)})

    server.expect_request(re.compile(".*")).respond_with_handler(handler)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture(scope="module")
def nginx(upstream, tmp_path_factory):
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(binary).exists(), "nginx is required (Debian package nginx; `make test` installs it)"
    prefix = tmp_path_factory.mktemp("nginx")
    (prefix / "certs").mkdir()
    _self_signed(prefix / "certs")
    ports = {80: _free_port(), 443: _free_port(), 8000: _free_port()}
    conf = _rewrite((DEPLOY / "nginx" / "nginx.conf").read_text(), prefix=prefix, upstream=upstream.port, ports=ports)
    (prefix / "nginx.conf").write_text(conf)
    args = [binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")]
    check = subprocess.run([*args, "-t"], capture_output=True, text=True, check=False)  # nosec B603
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen([*args, "-g", "daemon off;"])  # nosec B603
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", ports[8000]), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, (prefix / "error.log").read_text()
                time.sleep(0.05)
        yield {**ports, "ca": str(prefix / "certs" / "tls.crt")}
    finally:
        process.terminate()
        process.wait(timeout=10)


def _get(nginx: dict, url: str, **headers: str) -> requests.Response:
    # stream=True: the body as it came over the wire, to see whether nginx compressed it.
    return requests.get(
        url,
        headers={"Accept-Encoding": "gzip", **headers},
        verify=nginx["ca"],
        stream=True,
        timeout=5,
        allow_redirects=False,
    )


def test_internal_port_serves_the_callers_uncompressed_as_https_with_their_host(nginx):
    response = _get(nginx, f"http://127.0.0.1:{nginx[8000]}/api/v1/users/users/", Host="user-management:8000")

    raw = response.raw.read()
    assert response.status_code == 200
    assert "Content-Encoding" not in response.headers
    assert json.loads(raw) == json.loads(BIG_JSON)
    seen = json.loads(response.headers["X-Seen"])
    assert seen["Host"] == "user-management"  # in ALLOWED_HOSTS of both Compose files
    assert seen["X-Forwarded-Proto"] == "https"  # production's SSL redirect does not bounce the callers
    assert seen["X-Forwarded-For"] == "127.0.0.1"  # TRUSTED_PROXY_COUNT=1 reads the caller's address


def test_public_https_port_still_compresses_json_but_not_token_responses(nginx):
    listing = _get(nginx, f"https://127.0.0.1:{nginx[443]}/api/v1/users/users/")
    login = _get(nginx, f"https://127.0.0.1:{nginx[443]}/api/v1/users/login/")

    assert listing.headers.get("Content-Encoding") == "gzip"
    assert json.loads(gzip.decompress(listing.raw.read())) == json.loads(BIG_JSON)
    assert json.loads(listing.headers["X-Seen"])["X-Forwarded-Proto"] == "https"
    assert "Content-Encoding" not in login.headers


def test_metrics_are_hidden_on_both_entrances_and_plain_http_redirects(nginx):
    assert _get(nginx, f"http://127.0.0.1:{nginx[8000]}/metrics").status_code == 404
    assert _get(nginx, f"https://127.0.0.1:{nginx[443]}/metrics").status_code == 404
    assert _get(nginx, f"http://127.0.0.1:{nginx[80]}/api/v1/users/users/").status_code == 301

"""The production stack as Daphne serves it: static files through WhiteNoise, the API."""

import os
import subprocess
import sys

import pytest
import requests

from tests.canvas.test_settings import PRODUCTION_ENV
from tests.live import BASE_DIR, daphne


@pytest.fixture(scope="module")
def production_server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("served")
    env = {
        **PRODUCTION_ENV,
        "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
        "REDIS_URL": "",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "STATIC_ROOT": str(workdir / "static"),
    }
    # Independent (one writes the database, the other the static files): run side by side.
    commands = [
        subprocess.Popen(  # noqa: S603
            [sys.executable, "manage.py", *command, "--verbosity", "0"],
            cwd=BASE_DIR,
            env={**os.environ, **env},
        )
        for command in (["migrate", "--noinput"], ["collectstatic", "--noinput"])
    ]
    try:
        for command in commands:
            assert command.wait(timeout=120) == 0, command.args
    finally:
        for command in commands:
            if command.poll() is None:
                command.kill()
                command.wait()
    with daphne(env) as url:
        yield url


def test_static_files_are_served_by_whitenoise_under_daphne(production_server):
    response = requests.get(f"{production_server}/static/admin/css/base.css", timeout=10)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/css")


def test_swagger_ui_assets_come_from_the_sidecar_not_a_cdn(production_server):
    response = requests.get(
        f"{production_server}/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
        timeout=10,
    )
    assert response.status_code == 200


def test_api_answers_json_401_without_credentials(production_server):
    response = requests.get(f"{production_server}/api/", timeout=10)

    assert response.status_code == 401
    assert response.headers["Content-Type"].startswith("application/json")


def test_a_form_body_is_left_to_the_application(production_server):
    # Twisted parsed every form POST's body itself before Daphne passed it on, and answered
    # a multipart body its email parser refused with a bare 400 of its own: no JSON, no
    # detail. The body now reaches Django as it came (canvas/daphne_server.py).
    response = requests.post(
        f"{production_server}/api/graphs/",
        data=b"not a multipart body",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
        timeout=10,
    )

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_unknown_host_is_refused(production_server):
    response = requests.get(
        f"{production_server}/api/", headers={"Host": "evil.example"}, timeout=10
    )
    assert response.status_code == 400


def test_the_server_keeps_answering_after_more_log_than_a_pipe_holds(production_server):
    # Each 404 logs a warning with its path: 60 of these write ~240 KB to the server's log,
    # several times what a pipe holds. tests/live.py once gave the server a pipe nobody read,
    # and the server blocked in a log write after ~845 small 404s (the bench's too).
    long_path = "/api/" + "x" * 4000 + "/"
    with requests.Session() as session:
        for _ in range(60):
            assert session.get(production_server + long_path, timeout=10).status_code == 404

        assert session.get(f"{production_server}/api/", timeout=10).status_code == 401

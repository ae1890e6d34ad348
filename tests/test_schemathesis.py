"""The schema the server keeps: schemathesis against the live OpenAPI schema.

Every operation of ``/api/schema/`` is called with generated requests as an authenticated user
(the WSGI application in this process, on the test database), and every answer must pass
``not_a_server_error``, ``status_code_conformance``, ``content_type_conformance`` and
``response_schema_conformance``. Bounded (a few generated examples per operation and mode, and
the coverage phase's negative cases only where a body or query reaches validation; see CONFIG)
and seeded, so a run is repeatable and takes well under two minutes.
"""

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, seed
from hypothesis import settings as hypothesis_settings
from rest_framework.authtoken.models import Token
from rest_framework.response import Response
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from canvas.core.throttle_rates import parse_rates
from canvas.wsgi import application

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
DEAD_URL = "http://127.0.0.1:9"  # nothing listens: providers answer "down" at once


# Besides the `max_examples` generated cases per operation and mode (the fuzzing phase, 215
# cases), schemathesis runs its coverage phase: deterministic boundary cases for every property
# and parameter in turn, which `max_examples` does not bound (2,472 cases of 2,688 in all).
# Operations with an object id in the path answer a generated id with 404 whatever the body or
# the query (a missing object is a 404 before any validation error), so their negative cases
# only repeat that 404: they get the coverage phase's positive cases, and fuzzing in both
# modes as every operation.
# 1,562 cases in all (docs/security.md gives the time).
CONFIG = SchemathesisConfig.from_dict(
    {
        "operations": [
            {
                "include-path-regex": r"\{",
                "phases": {"coverage": {"generation": {"mode": "positive"}}},
            }
        ]
    }
)

# Loaded once, at collection, from the application itself (no database access).
schema = schemathesis.openapi.from_wsgi("/api/schema/", application, config=CONFIG)


@pytest.fixture
def served(db, settings):
    """The application as the schemathesis run needs it."""
    # No request leaves the machine (providers are down), nothing is throttled (the run is
    # hundreds of requests a minute) and logins are cheap.
    settings.OLLAMA_BASE_URL = DEAD_URL
    settings.GROQ_BASE_URL = DEAD_URL
    settings.GROQ_API_KEY = ""
    settings.THROTTLE_RATES = parse_rates("")
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # As Django's test client does: the end of a request must not close the test's database
    # connection (its transaction holds the test's data).
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def token(django_user_model):
    user = django_user_model.objects.create_user(username="fuzz", password="fuzz-pass-123")
    return Token.objects.create(user=user).key


@schema.parametrize()
@seed(20261128)
@hypothesis_settings(
    max_examples=5,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_keeps_the_schema(served, case, token):
    case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=CHECKS)


def test_the_checks_catch_an_answer_the_schema_does_not_describe(served, token, monkeypatch):
    # The run above passing means something only if these checks fail on a broken answer.
    from graphs.views import NodeTypeListView

    monkeypatch.setattr(NodeTypeListView, "get", lambda self, request: Response({"not": "a list"}))
    case = schema["/api/node-types/"]["GET"].Case()

    with pytest.raises(FailureGroup) as info:
        case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=CHECKS)
    assert any("violates schema" in str(error) for error in info.value.exceptions)

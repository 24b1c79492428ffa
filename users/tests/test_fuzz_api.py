"""Schema-driven fuzzing (schemathesis): every operation, as an HOD, a Student, a service account and anonymously.

The full run (every check, 100 examples, a live gunicorn) is `make fuzz` (fuzz/__main__.py); this is its fast,
derandomized subset in the suite.

Checks: not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance.
A bounded number of examples per operation keeps the run to a few minutes. Schemathesis's coverage phase (each
parameter's boundary and invalid values, thousands of requests) runs once, as the HOD, whose run reaches every
operation's validation (the public ones ignore the token); the other callers get the fuzzing phase, which is where
their permissions differ. ``make fuzz`` runs every phase as every caller.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS
from schemathesis.config import SchemathesisConfig

from user_service.wsgi import application
from users.models import UserType

pytestmark = pytest.mark.slow

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
fuzzing_only = schemathesis.openapi.from_wsgi(
    "/api/schema/?format=json",
    application,
    config=SchemathesisConfig.from_dict({"phases": {"coverage": {"enabled": False}}}),
)
CHECKED = [CHECKS.get_by_names([name])[0] for name in (
    "not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance",
)]  # fmt: skip
EXAMPLES = 12


@pytest.fixture(autouse=True)
def _no_throttles():
    """Thousands of generated requests from one address: rate limits are tested elsewhere."""
    from users.api.throttles import PrincipalThrottle, PublicEndpointThrottle

    originals = PublicEndpointThrottle.allow_request, PrincipalThrottle.allow_request
    PublicEndpointThrottle.allow_request = PrincipalThrottle.allow_request = lambda self, request, view: True
    yield
    PublicEndpointThrottle.allow_request, PrincipalThrottle.allow_request = originals


@pytest.fixture
def hod_token(transactional_db, login, make_user):
    return login(make_user(user_type=UserType.HOD, username="fuzz-hod"))["access_token"]


@pytest.fixture
def student_token(transactional_db, login, make_user):
    return login(make_user(user_type=3, username="fuzz-student"))["access_token"]


@pytest.fixture
def service_token(transactional_db, api_client):
    from users.services.service_accounts import service_account_create

    account, secret = service_account_create(name="fuzz-service", scopes=["users:read", "tokens:introspect"])
    body = {"client_id": account.client_id, "client_secret": secret}
    response = api_client.post("/api/v1/users/service-token/", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@pytest.mark.django_db(transaction=True)  # autocommit, as in production: every request commits
def test_api_as_hod(case, hod_token):
    case.call_and_validate(headers={"Authorization": f"Bearer {hod_token}", "Host": "127.0.0.1"}, checks=CHECKED)


@fuzzing_only.parametrize()
@settings(max_examples=EXAMPLES // 2, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@pytest.mark.django_db(transaction=True)
def test_api_as_student(case, student_token):
    headers = {"Authorization": f"Bearer {student_token}", "Host": "127.0.0.1"}
    case.call_and_validate(headers=headers, checks=CHECKED)


@fuzzing_only.parametrize()
@settings(max_examples=EXAMPLES // 2, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@pytest.mark.django_db(transaction=True)
def test_api_as_service(case, service_token):
    headers = {"Authorization": f"Bearer {service_token}", "Host": "127.0.0.1"}
    case.call_and_validate(headers=headers, checks=CHECKED)


@fuzzing_only.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@pytest.mark.django_db(transaction=True)
def test_api_anonymously(case):
    case.call_and_validate(headers={"Host": "127.0.0.1"}, checks=CHECKED)

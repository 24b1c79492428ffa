"""Schema-driven fuzzing (schemathesis): every operation, as an HOD and anonymously, against the app's own schema.

Checks: not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance.
A bounded number of examples per operation keeps the run to a few minutes.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS

from user_service.wsgi import application
from users.models import UserType

pytestmark = pytest.mark.slow

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
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


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@pytest.mark.django_db(transaction=True)  # autocommit, as in production: every request commits
def test_api_as_hod(case, hod_token):
    case.call_and_validate(headers={"Authorization": f"Bearer {hod_token}", "Host": "127.0.0.1"}, checks=CHECKED)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@pytest.mark.django_db(transaction=True)
def test_api_anonymously(case):
    case.call_and_validate(headers={"Host": "127.0.0.1"}, checks=CHECKED)

"""Authenticator apps (TOTP) and recovery codes, called without HTTP: real pyotp codes at real and shifted steps."""

import base64
import time
from urllib.parse import parse_qs, unquote, urlparse

import pyotp
import pytest
import time_machine
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from users.exceptions import FactorConflict, NotFound, ProofRejected
from users.models import RecoveryCode, TOTPDevice
from users.services import mfa
from users.services.mfa import crypto, recovery
from users.services.mfa.factors import FactorContext
from users.tests.mfa_support import STEP, code_at, enrol_totp, secret_of

pytestmark = pytest.mark.django_db
CONTEXT = FactorContext(ip=None, user_agent="tests")
# A moment in the middle of a time step, so a test's own runtime never crosses into the next one.
T0 = (int(time.time()) // STEP) * STEP + STEP * 1000 + 15


def _verify(user, code: str) -> bool:
    return mfa.TOTP.verify(user=user, proof=code, context=CONTEXT)


class TestEnrolment:
    def test_begin_answers_a_secret_its_uri_and_a_qr_code_and_stores_it_pending(self, staff, settings):
        settings.MFA_TOTP_ISSUER = "Springfield High"

        enrolment = mfa.totp_enrol_begin(user=staff)

        assert len(base64.b32decode(enrolment.secret)) == 20  # 160 bits
        uri = urlparse(enrolment.otpauth_uri)
        assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
        assert parse_qs(uri.query) == {"secret": [enrolment.secret], "issuer": ["Springfield High"]}
        assert unquote(uri.path) == f"/Springfield High:{staff.email}"
        parsed = pyotp.parse_uri(enrolment.otpauth_uri)
        assert (parsed.digits, parsed.interval, parsed.digest().name) == (6, 30, "sha1")
        assert enrolment.qr_svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"')
        device = TOTPDevice.objects.get(user=staff)
        assert device.confirmed_at is None
        assert not mfa.TOTP.confirmed(staff)

    def test_the_secret_is_encrypted_at_rest(self, staff):
        enrolment = mfa.totp_enrol_begin(user=staff)

        stored = TOTPDevice.objects.get(user=staff).secret_encrypted
        assert enrolment.secret not in stored
        assert crypto.secret_decrypt(stored) == enrolment.secret

    def test_confirm_with_a_code_from_the_app_answers_ten_recovery_codes(self, staff):
        enrolment = mfa.totp_enrol_begin(user=staff)

        codes = mfa.totp_enrol_confirm(user=staff, code=pyotp.TOTP(enrolment.secret).now())

        assert len(codes) == 10
        assert len(set(codes)) == 10
        assert all(len(code) == 19 and code.count("-") == 3 for code in codes)
        assert mfa.TOTP.confirmed(staff)
        assert mfa.methods_for(staff) == ["totp", "recovery_code"]

    def test_confirm_with_a_wrong_code_is_refused_and_stays_pending(self, staff):
        enrolment = mfa.totp_enrol_begin(user=staff)
        wrong = f"{(int(pyotp.TOTP(enrolment.secret).now()) + 1) % 1_000_000:06d}"

        with pytest.raises(ProofRejected):
            mfa.totp_enrol_confirm(user=staff, code=wrong)

        assert not mfa.TOTP.confirmed(staff)
        assert not RecoveryCode.objects.filter(user=staff).exists()

    def test_confirm_without_a_pending_app_is_a_conflict(self, staff):
        with pytest.raises(FactorConflict) as caught:
            mfa.totp_enrol_confirm(user=staff, code="123456")

        assert caught.value.code == "no_pending_enrolment"

    def test_begin_again_replaces_a_pending_secret(self, staff):
        first = mfa.totp_enrol_begin(user=staff)
        second = mfa.totp_enrol_begin(user=staff)

        assert first.secret != second.secret
        assert secret_of(staff) == second.secret
        with pytest.raises(ProofRejected):
            mfa.totp_enrol_confirm(user=staff, code=pyotp.TOTP(first.secret).now())

    def test_one_app_per_person(self, staff):
        enrol_totp(staff)

        with pytest.raises(FactorConflict) as caught:
            mfa.totp_enrol_begin(user=staff)

        assert caught.value.code == "totp_already_enrolled"


class TestCodes:
    def test_the_current_code_is_accepted_once(self, staff):
        enrolled = enrol_totp(staff)
        with time_machine.travel(T0, tick=False):
            code = code_at(enrolled.secret, T0)

            assert _verify(staff, code) is True
            assert _verify(staff, code) is False  # replay: the step is spent

    @pytest.mark.parametrize(("steps", "accepted"), [(-2, False), (-1, True), (0, True), (1, True), (2, False)])
    def test_clock_drift_of_one_step_is_accepted_two_are_refused(self, staff, steps, accepted):
        enrolled = enrol_totp(staff)
        with time_machine.travel(T0, tick=False):
            assert _verify(staff, code_at(enrolled.secret, T0 + steps * STEP)) is accepted

    def test_a_code_of_an_earlier_step_than_the_last_used_is_refused(self, staff):
        enrolled = enrol_totp(staff)
        with time_machine.travel(T0, tick=False):
            assert _verify(staff, code_at(enrolled.secret, T0 + STEP)) is True  # the app's clock runs ahead

            assert _verify(staff, code_at(enrolled.secret, T0)) is False  # the current step is older than that

    def test_the_next_step_after_a_used_one_is_accepted(self, staff):
        enrolled = enrol_totp(staff)
        with time_machine.travel(T0, tick=False) as traveller:
            assert _verify(staff, code_at(enrolled.secret, T0)) is True
            traveller.shift(STEP)

            assert _verify(staff, code_at(enrolled.secret, T0 + STEP)) is True

    @pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "١٢٣٤٥٦", " 12345", None, 123456])
    def test_malformed_codes_are_refused(self, staff, code):
        enrol_totp(staff)

        assert _verify(staff, code) is False

    def test_a_pending_app_does_not_verify_logins(self, staff):
        enrolment = mfa.totp_enrol_begin(user=staff)

        assert _verify(staff, pyotp.TOTP(enrolment.secret).now()) is False

    def test_two_racing_requests_with_one_code_cannot_both_win(self, staff):
        enrolled = enrol_totp(staff)
        with time_machine.travel(T0, tick=False):
            device = TOTPDevice.objects.get(user=staff)
            code = code_at(enrolled.secret, T0)
            # both read the device before either spends the step
            first, second = mfa.totp._code_accept(device, code), mfa.totp._code_accept(device, code)

        assert sorted([first, second]) == [False, True]


class TestRemoval:
    def test_removing_the_last_factor_removes_the_recovery_codes(self, staff):
        enrol_totp(staff)

        mfa.totp_remove(user=staff)

        assert not TOTPDevice.objects.filter(user=staff).exists()
        assert not RecoveryCode.objects.filter(user=staff).exists()
        assert mfa.methods_for(staff) == []

    def test_nothing_to_remove_is_not_found(self, staff):
        with pytest.raises(NotFound):
            mfa.totp_remove(user=staff)


class TestEncryptionKeys:
    def test_a_configured_key_encrypts_and_a_rotated_out_key_still_decrypts(self, settings):
        old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
        settings.MFA_ENCRYPTION_KEYS = (old,)
        stored_with_old = crypto.secret_encrypt("JBSWY3DPEHPK3PXP")

        settings.MFA_ENCRYPTION_KEYS = (new, old)

        assert crypto.secret_decrypt(stored_with_old) == "JBSWY3DPEHPK3PXP"
        rotated = crypto.secret_reencrypt(stored_with_old)
        assert Fernet(new.encode()).decrypt(rotated.encode()) == b"JBSWY3DPEHPK3PXP"

    def test_a_secret_whose_key_was_dropped_is_a_configuration_error(self, settings):
        settings.MFA_ENCRYPTION_KEYS = (Fernet.generate_key().decode(),)
        stored = crypto.secret_encrypt("JBSWY3DPEHPK3PXP")
        settings.MFA_ENCRYPTION_KEYS = (Fernet.generate_key().decode(),)

        with pytest.raises(ImproperlyConfigured, match="MFA_ENCRYPTION_KEYS"):
            crypto.secret_decrypt(stored)

    def test_debug_without_keys_derives_one_from_the_secret_key(self, settings):
        settings.DEBUG = True
        settings.MFA_ENCRYPTION_KEYS = ()
        stored = crypto.secret_encrypt("JBSWY3DPEHPK3PXP")

        assert Fernet(crypto._derived_key()).decrypt(stored.encode()) == b"JBSWY3DPEHPK3PXP"
        settings.SECRET_KEY = "another-secret-key-" + "x" * 40
        with pytest.raises(ImproperlyConfigured):
            crypto.secret_decrypt(stored)

    def test_production_without_keys_refuses(self, settings):
        settings.DEBUG = False
        settings.MFA_ENCRYPTION_KEYS = ()

        with pytest.raises(ImproperlyConfigured, match="MFA_ENCRYPTION_KEYS"):
            crypto.secret_encrypt("JBSWY3DPEHPK3PXP")


class TestRecoveryCodes:
    def test_they_are_stored_as_salted_hashes_only(self, staff):
        codes = enrol_totp(staff).recovery_codes

        rows = list(RecoveryCode.objects.filter(user=staff))
        assert len(rows) == 10
        assert len({row.salt for row in rows}) == 10
        stored = " ".join(f"{row.salt} {row.code_hash}" for row in rows)
        assert not any(recovery.code_normalize(code) in stored for code in codes)

    def test_each_works_once(self, staff):
        codes = enrol_totp(staff).recovery_codes

        assert mfa.RECOVERY_CODES.verify(user=staff, proof=codes[3], context=CONTEXT) is True
        assert mfa.RECOVERY_CODES.verify(user=staff, proof=codes[3], context=CONTEXT) is False
        assert mfa.RECOVERY_CODES.verify(user=staff, proof=codes[4], context=CONTEXT) is True
        assert recovery.recovery_codes_remaining(staff) == 8

    def test_typing_is_forgiving_about_case_spaces_and_dashes(self, staff):
        code = enrol_totp(staff).recovery_codes[0]
        typed = " " + code.upper().replace("-", " ") + " "

        assert mfa.RECOVERY_CODES.verify(user=staff, proof=typed, context=CONTEXT) is True

    def test_another_persons_code_does_not_work(self, staff, hod):
        codes = enrol_totp(staff).recovery_codes
        enrol_totp(hod)

        assert mfa.RECOVERY_CODES.verify(user=hod, proof=codes[0], context=CONTEXT) is False

    def test_regenerating_replaces_every_earlier_code(self, staff):
        old = enrol_totp(staff).recovery_codes

        new = mfa.recovery_codes_regenerate(user=staff)

        assert len(new) == 10
        assert set(new).isdisjoint(old)
        assert mfa.RECOVERY_CODES.verify(user=staff, proof=old[0], context=CONTEXT) is False
        assert mfa.RECOVERY_CODES.verify(user=staff, proof=new[0], context=CONTEXT) is True

    def test_regenerating_without_a_factor_is_a_conflict(self, staff):
        with pytest.raises(FactorConflict) as caught:
            mfa.recovery_codes_regenerate(user=staff)

        assert caught.value.code == "mfa_not_enabled"

    def test_a_second_factor_keeps_unused_codes(self, staff):
        codes = enrol_totp(staff).recovery_codes
        TOTPDevice.objects.filter(user=staff).delete()  # as if another factor still held them

        again = enrol_totp(staff).recovery_codes

        assert again == []
        assert mfa.RECOVERY_CODES.verify(user=staff, proof=codes[0], context=CONTEXT) is True

    def test_recovery_codes_alone_are_no_factor(self, staff):
        enrol_totp(staff)
        TOTPDevice.objects.filter(user=staff).delete()

        assert mfa.factors_confirmed(staff) == []
        assert mfa.methods_for(staff) == []


def test_rotating_the_key_with_the_command(staff, settings):
    from io import StringIO

    from django.core.management import call_command

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.MFA_ENCRYPTION_KEYS = (old,)
    enrolled = enrol_totp(staff)
    settings.MFA_ENCRYPTION_KEYS = (new, old)
    output = StringIO()

    call_command("mfa_reencrypt", stdout=output)
    settings.MFA_ENCRYPTION_KEYS = (new,)  # the old key is gone

    assert "1 TOTP secret(s)" in output.getvalue()
    assert secret_of(staff) == enrolled.secret
    assert mfa.TOTP.verify(user=staff, proof=enrolled.code(), context=CONTEXT) is True

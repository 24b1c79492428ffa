"""URLs of second factors (passkeys included), the second step of a login, reauthentication and the HOD's reset,
under /api/v1/users/."""

from django.urls import path

from users.api import mfa, webauthn

urlpatterns = [
    path("mfa/", mfa.MfaStatusView.as_view(), name="mfa"),
    path("mfa/totp/", mfa.TOTPView.as_view(), name="mfa-totp"),
    path("mfa/totp/confirm/", mfa.TOTPConfirmView.as_view(), name="mfa-totp-confirm"),
    path("mfa/recovery-codes/", mfa.RecoveryCodesView.as_view(), name="mfa-recovery-codes"),
    path(
        "mfa/webauthn/register/options/",
        webauthn.PasskeyRegisterOptionsView.as_view(),
        name="webauthn-register-options",
    ),
    path("mfa/webauthn/register/", webauthn.PasskeyRegisterView.as_view(), name="webauthn-register"),
    path("mfa/webauthn/<int:pk>/", webauthn.PasskeyView.as_view(), name="webauthn-credential"),
    path("login/mfa/", mfa.LoginMfaView.as_view(), name="login-mfa"),
    path(
        "login/mfa/webauthn/options/", webauthn.LoginMfaPasskeyOptionsView.as_view(), name="login-mfa-webauthn-options"
    ),
    path("login/webauthn/options/", webauthn.PasskeyLoginOptionsView.as_view(), name="login-webauthn-options"),
    path("login/webauthn/", webauthn.PasskeyLoginView.as_view(), name="login-webauthn"),
    path("reauthenticate/", mfa.ReauthenticateView.as_view(), name="reauthenticate"),
    path(
        "reauthenticate/webauthn/options/",
        webauthn.ReauthenticatePasskeyOptionsView.as_view(),
        name="reauthenticate-webauthn-options",
    ),
    path("<int:pk>/mfa/reset/", mfa.MfaResetView.as_view(), name="mfa-reset"),
]

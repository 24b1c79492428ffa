"""URLs of second factors, the second step of a login, reauthentication and the HOD's reset, under /api/v1/users/."""

from django.urls import path

from users.api import mfa

urlpatterns = [
    path("mfa/", mfa.MfaStatusView.as_view(), name="mfa"),
    path("mfa/totp/", mfa.TOTPView.as_view(), name="mfa-totp"),
    path("mfa/totp/confirm/", mfa.TOTPConfirmView.as_view(), name="mfa-totp-confirm"),
    path("mfa/recovery-codes/", mfa.RecoveryCodesView.as_view(), name="mfa-recovery-codes"),
    path("login/mfa/", mfa.LoginMfaView.as_view(), name="login-mfa"),
    path("reauthenticate/", mfa.ReauthenticateView.as_view(), name="reauthenticate"),
    path("<int:pk>/mfa/reset/", mfa.MfaResetView.as_view(), name="mfa-reset"),
]

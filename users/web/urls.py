"""Routes of the single sign-on pages and the OpenID Connect endpoints."""

from django.urls import path
from oauth2_provider.views import RevokeTokenView, UserInfoView

from users.web import account, logout, oidc, recovery, views

app_name = "web"

urlpatterns = [
    path("account/", account.account, name="account"),
    path("account/sessions/<uuid:session_id>/end/", account.session_end, name="account-session-end"),
    path("account/apps/<int:application_id>/revoke/", account.app_revoke, name="account-app-revoke"),
    path("account/password/", account.password, name="account-password"),
    path("account/factors/totp/", account.totp_begin, name="account-totp"),
    path("account/factors/totp/confirm/", account.totp_confirm, name="account-totp-confirm"),
    path("account/factors/totp/remove/", account.totp_remove, name="account-totp-remove"),
    path("account/factors/recovery-codes/", account.recovery_codes, name="account-recovery-codes"),
    path("account/sign-in/", views.sign_in, name="sign-in"),
    path("account/sign-in/passkey/options/", views.passkey_options, name="sign-in-passkey-options"),
    path("account/sign-in/passkey/", views.passkey_sign_in, name="sign-in-passkey"),
    path("account/sign-in/second-factor/", views.second_factor, name="second-factor"),
    path(
        "account/sign-in/second-factor/passkey/options/",
        views.second_factor_passkey_options,
        name="second-factor-passkey-options",
    ),
    path("account/sign-in/enrol/", views.enrol, name="enrol"),
    # the e-mail links ({FRONTEND_URL}/reset-password?..., /verify-email?..., /login), FRONTEND_URL={issuer}/account
    path("account/forgot-password/", recovery.forgot_password, name="forgot-password"),
    path("account/reset-password", recovery.reset_password, name="reset-password"),
    path("account/verify-email", recovery.verify_email, name="verify-email"),
    path("account/login", recovery.login_link, name="login-link"),
    path("oidc/authorize/", oidc.authorize, name="authorize"),
    path("oidc/token/", oidc.token, name="token"),
    path("oidc/userinfo/", UserInfoView.as_view(), name="userinfo"),
    path("oidc/revoke/", RevokeTokenView.as_view(), name="revoke"),
    path("oidc/logout/", logout.end_session, name="end-session"),
]

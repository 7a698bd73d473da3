"""URLs of the account pages, under /accounts/."""

from django.urls import path

from accounts.views import account, auth, lifecycle, mfa

app_name = "accounts"

urlpatterns = [
    path("login/", auth.login_view, name="login"),
    path("login/verify/", auth.login_verify_view, name="login_verify"),
    path("logout/", auth.logout_view, name="logout"),
    path("reauthenticate/", auth.reauthenticate_view, name="reauthenticate"),
    path("signup/", lifecycle.signup_view, name="signup"),
    path("signup/done/", lifecycle.signup_done_view, name="signup_done"),
    path("verify-email/<str:token>/", lifecycle.verify_email_view, name="verify_email"),
    path("password/reset/", lifecycle.password_reset_view, name="password_reset"),
    path("password/reset/done/", lifecycle.password_reset_done_view, name="password_reset_done"),
    path(
        "password/reset/<str:uidb64>/<str:token>/", lifecycle.password_reset_confirm_view, name="password_reset_confirm"
    ),
    path("password/change/", account.password_change_view, name="password_change"),
    path("email/change/", account.email_change_view, name="email_change"),
    path("email/confirm/<str:token>/", account.email_change_confirm_view, name="email_change_confirm"),
    path("mfa/setup/", mfa.mfa_setup_view, name="mfa_setup"),
    path("mfa/devices/<int:device_id>/remove/", mfa.mfa_device_remove_view, name="mfa_device_remove"),
    path("mfa/backup-codes/", mfa.backup_codes_view, name="backup_codes"),
    path("sessions/", account.sessions_view, name="sessions"),
    path("sessions/revoke-others/", account.sessions_revoke_others_view, name="sessions_revoke_others"),
    path("sessions/<str:public_id>/revoke/", account.session_revoke_view, name="session_revoke"),
    path("security/", account.security_view, name="security"),
]

"""Accounts, sessions, 2FA, delete account, security log, settings and abuse limits (issue 5).

Every test drives the real views through Django's test client (allauth included) and checks
the property from outside: what the database, the session store and the pages hold after.
The cache is the real Redis, so rate limits are real; it is emptied before each test.
"""

from __future__ import annotations

import math
import re
import time
from datetime import timedelta
from importlib import import_module
from urllib.parse import unquote

import pytest
from allauth.account.internal.flows.login import AUTHENTICATION_METHODS_SESSION_KEY
from allauth.account.models import EmailAddress
from allauth.core.internal.ratelimit import parse_rates
from allauth.mfa import app_settings as mfa_settings
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from allauth.usersessions.models import UserSession
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.core import mail
from django.core.cache import cache
from django.db import connection as db
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import middleware
from accounts.models import SecurityEvent
from exchanges import keycheck, services
from exchanges.connect_limit import REACHED as CONNECT_LIMIT_MESSAGE
from exchanges.models import ExchangeConnection, Status
from tests.conftest import demo_key

pytestmark = pytest.mark.django_db

User = get_user_model()
GOOD = demo_key("demo: good key")
WITHDRAW = demo_key("demo: same user, key with withdraw")
ALICE_PW = "pw-alice-123"
BOB_PW = "pw-bob-123"
NEW_PW = "a-much-Longer-passphrase-4711"
LIST = "exchanges:connection-list"
LOGIN_AT = "accounts.login_at"


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    # Speed only: what is tested is who may sign in, not the hash's cost.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _empty_cache():
    """Rate-limit counters and used TOTP codes live in Redis: every test starts from zero."""
    cache.clear()
    yield
    cache.clear()


# --- Helpers -----------------------------------------------------------------------------------


def _store(session_key: str | None = None):
    return import_module(django_settings.SESSION_ENGINE).SessionStore(session_key)


def _session_key(client: Client) -> str | None:
    cookie = client.cookies.get(django_settings.SESSION_COOKIE_NAME)
    return cookie.value if cookie else None


def _login(client: Client, email: str, password: str, **extra):
    return client.post(reverse("account_login"), {"login": email, "password": password, **extra})


def _logged_in(client: Client, as_user=None) -> bool:
    """Asks the server, not the client: a protected page answers 200 only to a live session."""
    response = client.get(reverse("accounts:settings"))
    if response.status_code != 200:
        assert response.status_code == 302 and reverse("account_login") in response["Location"]
        return False
    return as_user is None or response.wsgi_request.user.pk == as_user.pk


def _must_log_in(client: Client, email: str, password: str) -> None:
    response = _login(client, email, password)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert response["Location"] == reverse(LIST)


def _reauthenticate_by_password(client: Client, password: str) -> None:
    response = client.post(reverse("account_reauthenticate"), {"password": password})
    assert response.status_code == 302, response.content.decode()[:2000]


def _age_authentication(client: Client, seconds: int = 3600) -> None:
    """Make every authentication record of this session `seconds` older (no recent re-auth)."""
    session = client.session
    records = session.get(AUTHENTICATION_METHODS_SESSION_KEY, [])
    for record in records:
        record["at"] -= seconds
    session[AUTHENTICATION_METHODS_SESSION_KEY] = records
    session.save()


def _totp(user, secret: str) -> str:
    """The current code, as an authenticator app shows it. allauth refuses a code twice in its
    30 s window; a test that needs two steps in one window forgets the earlier use."""
    if time.time() % mfa_settings.TOTP_PERIOD > mfa_settings.TOTP_PERIOD - 1:
        time.sleep(1.1)  # not a code that expires before the server sees it
    code = format_hotp_value(hotp_value(secret, int(time.time()) // mfa_settings.TOTP_PERIOD))
    cache.delete(f"allauth.mfa.totp.used?user={user.pk}&code={code}")
    return code


def _enable_totp(client: Client, user, password: str) -> str:
    """Turn TOTP on through allauth's own pages (re-authenticate, scan, confirm a code)."""
    _reauthenticate_by_password(client, password)
    assert client.get(reverse("mfa_activate_totp")).status_code == 200
    secret = client.session["mfa.totp.secret"]
    response = client.post(reverse("mfa_activate_totp"), {"code": _totp(user, secret)})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
    assert Authenticator.objects.filter(user=user, type=Authenticator.Type.RECOVERY_CODES).exists()
    return secret


def _mail_link(message) -> str:
    match = re.search(r"https?://testserver(/\S+)", message.body)
    assert match, message.body
    return match.group(1)


def _connection(owner, n: int = 0, **fields) -> ExchangeConnection:
    """A stored connection with encrypted key material, written directly."""
    access, secret = f"acc{n:04d}-0000-1111-2222-{owner.pk:05d}", f"SECRET-{n:04d}-{owner.pk:05d}-zz"
    defaults = {
        "owner": owner,
        "status": Status.CONNECTED,
        "established": True,
        "access_key": access,
        "secret_key": secret,
        "access_key_fingerprint": services.access_key_fingerprint(access),
        "access_key_head": access[:4],
        "access_key_tail": access[-4:],
    }
    return ExchangeConnection.objects.create(**{**defaults, **fields})


def _all_session_text() -> str:
    """Every server-side session, raw and decoded, plus allauth's per-session records."""
    parts = []
    for row in Session.objects.all():
        parts.append(row.session_data)
        parts.append(repr(_store().decode(row.session_data)))
    parts.extend(repr(s.data) for s in UserSession.objects.all())
    return "\n".join(parts)


def _row(pk: int) -> dict:
    table = ExchangeConnection._meta.db_table
    with db.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} WHERE id = %s", [pk])  # noqa: S608
        names = [c[0] for c in cursor.description]
        values = cursor.fetchone()
    assert values is not None
    return dict(zip(names, values, strict=True))


def _log_page(client: Client) -> str:
    """The entries of the security log page (the list itself, not the explanations around it)."""
    response = client.get(reverse("accounts:security-log"))
    assert response.status_code == 200
    match = re.search(r'<ol[^>]*data-testid="security-log"[^>]*>(.*?)</ol>', response.content.decode(), re.S)
    assert match, response.content.decode()[:3000]
    return match.group(1)


# --- Accounts ----------------------------------------------------------------------------------


def test_sign_up_log_out_and_log_in_again(client):
    response = client.post(
        reverse("account_signup"),
        {"email": "carol@example.com", "password1": NEW_PW, "password2": NEW_PW},
    )
    assert response.status_code == 302
    carol = User.objects.get(email="carol@example.com")
    assert carol.check_password(NEW_PW)
    assert _logged_in(client, carol)  # verification is optional in this environment

    response = client.post(reverse("account_logout"))
    assert response.status_code == 302
    assert not _logged_in(client)

    _must_log_in(client, "carol@example.com", NEW_PW)
    assert _logged_in(client, carol)


def test_logout_needs_a_post(client, alice):
    _must_log_in(client, alice.email, ALICE_PW)
    client.get(reverse("account_logout"))  # a link or <img> elsewhere cannot sign anyone out
    assert _logged_in(client, alice)


def test_password_reset_by_email_works_once(client, alice):
    response = client.post(reverse("account_reset_password"), {"email": alice.email})
    assert response.status_code == 302
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [alice.email]
    link = _mail_link(mail.outbox[0])

    response = client.get(link)  # allauth moves the key into the session, then redirects
    assert response.status_code == 302
    set_password_url = response["Location"]
    response = client.post(set_password_url, {"password1": NEW_PW, "password2": NEW_PW})
    assert response.status_code == 302, response.content.decode()[:2000]
    alice.refresh_from_db()
    assert alice.check_password(NEW_PW)

    # The same link again: refused, the password stays.
    other = Client()
    response = other.get(link, follow=True)
    assert response.context["token_fail"] is True
    response = other.post(
        response.redirect_chain[-1][0] if response.redirect_chain else link,
        {"password1": "attacker-Chosen-pw-99", "password2": "attacker-Chosen-pw-99"},
    )
    alice.refresh_from_db()
    assert alice.check_password(NEW_PW)
    assert SecurityEvent.objects.filter(user=alice, kind=SecurityEvent.Kind.PASSWORD_RESET).exists()


def test_password_reset_does_not_reveal_whether_an_account_exists(client, alice):
    known = client.post(reverse("account_reset_password"), {"email": alice.email})
    unknown = client.post(reverse("account_reset_password"), {"email": "nobody@example.com"})
    assert (known.status_code, known["Location"]) == (unknown.status_code, unknown["Location"])


def test_mandatory_email_verification_refuses_login_until_confirmed(client, settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    response = client.post(
        reverse("account_signup"),
        {"email": "dave@example.com", "password1": NEW_PW, "password2": NEW_PW},
    )
    assert response.status_code == 302
    dave = User.objects.get(email="dave@example.com")
    assert not _logged_in(client)
    assert len(mail.outbox) == 1
    link = _mail_link(mail.outbox[0])

    _login(client, "dave@example.com", NEW_PW)
    assert not _logged_in(client)

    assert client.post(link).status_code == 302  # confirm the address
    assert EmailAddress.objects.get(user=dave, email="dave@example.com").verified
    _must_log_in(client, "dave@example.com", NEW_PW)
    assert _logged_in(client, dave)


def test_change_password(client, alice):
    _must_log_in(client, alice.email, ALICE_PW)
    response = client.post(
        reverse("account_change_password"),
        {"oldpassword": ALICE_PW, "password1": NEW_PW, "password2": NEW_PW},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert _logged_in(client, alice)  # the session that changed it stays signed in
    client.post(reverse("account_logout"))
    _login(client, alice.email, ALICE_PW)
    assert not _logged_in(client)
    _must_log_in(client, alice.email, NEW_PW)


def test_change_password_needs_the_old_one(client, alice):
    _must_log_in(client, alice.email, ALICE_PW)
    client.post(
        reverse("account_change_password"),
        {"oldpassword": "not-it-at-all", "password1": NEW_PW, "password2": NEW_PW},
    )
    alice.refresh_from_db()
    assert alice.check_password(ALICE_PW)


def test_change_email_after_confirming_the_new_address(client, alice):
    _must_log_in(client, alice.email, ALICE_PW)
    response = client.post(reverse("account_email"), {"action_add": "", "email": "alice@new.example"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["alice@new.example"]
    alice.refresh_from_db()
    assert alice.email == "alice@example.com"  # not before it is confirmed

    assert client.post(_mail_link(mail.outbox[0])).status_code == 302
    response = client.post(reverse("account_email"), {"action_primary": "", "email": "alice@new.example"})
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.email == "alice@new.example"
    assert SecurityEvent.objects.filter(user=alice, kind=SecurityEvent.Kind.EMAIL_CHANGED).exists()
    client.post(reverse("account_logout"))
    _must_log_in(client, "alice@new.example", ALICE_PW)


# --- Sessions ----------------------------------------------------------------------------------


def test_login_issues_a_new_session_key_and_drops_the_old_one(client, alice):
    session = client.session  # an anonymous session, e.g. one planted by an attacker
    session["planted"] = "yes"
    session.save()
    before = _session_key(client)
    assert before and _store().exists(before)

    _must_log_in(client, alice.email, ALICE_PW)
    after = _session_key(client)
    assert after and after != before
    assert not _store().exists(before)
    planted = Client()
    planted.cookies[django_settings.SESSION_COOKIE_NAME] = before
    assert not _logged_in(planted)


def test_logout_deletes_the_server_side_session(client, alice):
    _must_log_in(client, alice.email, ALICE_PW)
    key = _session_key(client)
    assert _store().exists(key)
    client.post(reverse("account_logout"))
    assert not _store().exists(key)
    assert not Session.objects.filter(session_key=key).exists()
    replay = Client()
    replay.cookies[django_settings.SESSION_COOKIE_NAME] = key
    assert not _logged_in(replay)


@pytest.mark.parametrize("remember", [True, False])
def test_idle_timeout_is_30_minutes_renewed_by_activity(client, alice, remember):
    assert django_settings.SESSION_COOKIE_AGE == 30 * 60
    # Activity renews the session at most once a minute, not by a write on every request.
    assert middleware.RESOLUTION_SECONDS <= 60
    extra = {"remember": "on"} if remember else {}
    response = _login(client, alice.email, ALICE_PW, **extra)
    assert response.status_code == 302
    cookie = response.cookies[django_settings.SESSION_COOKIE_NAME]
    if remember:
        assert cookie["max-age"] == 30 * 60
    else:
        assert not cookie["max-age"] and not cookie["expires"]  # gone when the browser closes
    key = _session_key(client)
    expiry = Session.objects.get(session_key=key).expire_date
    assert timedelta(minutes=29) < expiry - timezone.now() <= timedelta(minutes=30)

    # Activity renews it.
    Session.objects.filter(session_key=key).update(expire_date=timezone.now() + timedelta(minutes=1))
    assert _logged_in(client, alice)
    renewed = Session.objects.get(session_key=key).expire_date
    assert renewed - timezone.now() > timedelta(minutes=29)

    # Idle past the limit: the server refuses the session whatever the browser still sends.
    Session.objects.filter(session_key=key).update(expire_date=timezone.now() - timedelta(seconds=1))
    assert not _logged_in(client)


def test_absolute_timeout_ends_a_session_12_hours_after_login(client, alice):
    assert django_settings.SESSION_ABSOLUTE_SECONDS == 12 * 3600
    _must_log_in(client, alice.email, ALICE_PW)
    session = client.session
    assert time.time() - session[LOGIN_AT] < 60  # stamped at login

    session[LOGIN_AT] = time.time() - 11 * 3600
    session.save()
    assert _logged_in(client, alice)  # busy, and not yet 12 hours

    session = client.session
    session[LOGIN_AT] = time.time() - 13 * 3600
    session.save()
    key = _session_key(client)
    assert not _logged_in(client)
    assert "_auth_user_id" not in _store(key).load()
    assert not _logged_in(client)


def test_changing_the_password_signs_out_other_sessions(alice):
    a, b = Client(), Client()
    _must_log_in(a, alice.email, ALICE_PW)
    _must_log_in(b, alice.email, ALICE_PW)
    assert _logged_in(b, alice)
    response = a.post(
        reverse("account_change_password"),
        {"oldpassword": ALICE_PW, "password1": NEW_PW, "password2": NEW_PW},
    )
    assert response.status_code == 302
    assert not _logged_in(b)
    assert _logged_in(a, alice)


@pytest.mark.django_db(transaction=True)
def test_turning_2fa_on_signs_out_other_sessions_and_is_logged():
    # Transactional: allauth announces the new authenticator on commit, inside the request.
    cache.clear()
    alice = User.objects.create_user(username="alice", email="alice@example.com", password=ALICE_PW)
    a, b = Client(), Client()
    _must_log_in(a, alice.email, ALICE_PW)
    _must_log_in(b, alice.email, ALICE_PW)
    _enable_totp(a, alice, ALICE_PW)
    assert not _logged_in(b)
    assert _logged_in(a, alice)
    kinds = set(SecurityEvent.objects.filter(user=alice).values_list("kind", flat=True))
    assert {SecurityEvent.Kind.MFA_ENABLED, SecurityEvent.Kind.SESSIONS_ENDED} <= kinds
    page = _log_page(a)
    assert "Two-factor authentication turned on" in page
    assert "Other sessions signed out" in page


# --- Two-factor authentication -----------------------------------------------------------------


def test_with_totp_on_login_needs_the_code(client, alice):
    _must_log_in(client, alice.email, ALICE_PW)
    secret = _enable_totp(client, alice, ALICE_PW)
    client.post(reverse("account_logout"))

    response = _login(client, alice.email, ALICE_PW)
    assert response.status_code == 302 and response["Location"] == reverse("mfa_authenticate")
    assert not _logged_in(client)  # the password alone is not enough

    stage = Client()  # the password step alone, in another browser, gets nowhere either
    _login(stage, alice.email, ALICE_PW)
    assert stage.get(reverse(LIST)).status_code == 302

    assert client.post(reverse("mfa_authenticate"), {"code": "000000"}).status_code == 200
    wrong = f"{(int(_totp(alice, secret)) + 1) % 1_000_000:06d}"
    client.post(reverse("mfa_authenticate"), {"code": wrong})
    assert not _logged_in(client)
    response = client.post(reverse("mfa_authenticate"), {"code": _totp(alice, secret)})
    assert response.status_code == 302
    assert _logged_in(client, alice)


def test_a_recovery_code_works_once_as_the_second_factor(alice):
    first = Client()
    _must_log_in(first, alice.email, ALICE_PW)
    _enable_totp(first, alice, ALICE_PW)
    codes = RecoveryCodes(Authenticator.objects.get(user=alice, type="recovery_codes")).get_unused_codes()
    assert len(codes) >= 8

    c = Client()
    _login(c, alice.email, ALICE_PW)
    assert c.post(reverse("mfa_authenticate"), {"code": codes[0]}).status_code == 302
    assert _logged_in(c, alice)

    again = Client()
    _login(again, alice.email, ALICE_PW)
    again.post(reverse("mfa_authenticate"), {"code": codes[0]})
    assert not _logged_in(again)


@pytest.fixture
def alice_with_2fa(client, alice):
    """alice signed in with TOTP on; her last re-authentication is long past."""
    _must_log_in(client, alice.email, ALICE_PW)
    secret = _enable_totp(client, alice, ALICE_PW)
    _age_authentication(client)
    return client, secret


def _reauth_page(response) -> bool:
    location = unquote(response.get("Location", ""))
    return response.status_code == 302 and (
        location.startswith(reverse("account_reauthenticate"))
        or location.startswith(reverse("mfa_reauthenticate"))
    )


@pytest.mark.parametrize("name", ["exchanges:connection-replace", "exchanges:connection-remove"])
def test_with_2fa_replace_and_remove_forms_ask_to_reauthenticate(alice_with_2fa, alice, name):
    client, _ = alice_with_2fa
    c = _connection(alice)
    response = client.get(reverse(name, args=[c.pk]))
    assert _reauth_page(response), (response.status_code, response.get("Location"))
    assert reverse(name, args=[c.pk]) in unquote(response["Location"])  # comes back after


def test_with_2fa_a_stale_remove_post_deletes_nothing(alice_with_2fa, alice):
    client, _ = alice_with_2fa
    c = _connection(alice)
    url = reverse("exchanges:connection-remove", args=[c.pk])
    response = client.post(url)
    assert response.status_code == 302 and response["Location"] == url
    assert ExchangeConnection.objects.filter(pk=c.pk).exists()
    htmx = client.post(url, HTTP_HX_REQUEST="true")
    assert htmx.status_code == 204 and htmx["HX-Redirect"] == url
    assert ExchangeConnection.objects.filter(pk=c.pk).exists()


def test_with_2fa_a_stale_replace_post_is_not_stashed_with_its_secret(alice_with_2fa, alice):
    client, _ = alice_with_2fa
    c = _connection(alice)
    new_access, new_secret = "zzNEWacc-9999-8888-7777-66665555", "TOP-SECRET-never-in-a-session-1234"
    url = reverse("exchanges:connection-replace", args=[c.pk])
    response = client.post(url, {"access_key": new_access, "secret_key": new_secret})
    assert response.status_code == 302 and response["Location"] == url
    c.refresh_from_db()
    assert c.pending_fingerprint is None and c.pending_secret_key is None
    text = _all_session_text()
    assert new_secret not in text and new_access not in text

    # Nor on the way through re-authentication and back.
    client.get(url)
    assert new_secret not in _all_session_text()


def test_with_2fa_remove_works_after_reauthenticating_with_a_totp_code(alice_with_2fa, alice):
    client, secret = alice_with_2fa
    c = _connection(alice)
    url = reverse("exchanges:connection-remove", args=[c.pk])
    assert _reauth_page(client.get(url))

    response = client.post(f"{reverse('mfa_reauthenticate')}?next={url}", {"code": "123456"})
    assert ExchangeConnection.objects.filter(pk=c.pk).exists()
    response = client.post(f"{reverse('mfa_reauthenticate')}?next={url}", {"code": _totp(alice, secret)})
    assert response.status_code == 302 and response["Location"] == url
    assert client.get(url).status_code == 200
    response = client.post(url)
    assert response.status_code == 302 and response["Location"] == reverse(LIST)
    assert not ExchangeConnection.objects.filter(pk=c.pk).exists()


def test_with_2fa_replace_works_after_reauthenticating(alice_with_2fa, alice):
    client, secret = alice_with_2fa
    c = _connection(alice)
    url = reverse("exchanges:connection-replace", args=[c.pk])
    client.post(f"{reverse('mfa_reauthenticate')}?next={url}", {"code": _totp(alice, secret)})
    response = client.post(url, {"access_key": "zzNEWacc-9999-8888-7777-66665555", "secret_key": "S" * 32})
    assert response.status_code == 302
    c.refresh_from_db()
    assert c.replacing


def test_without_2fa_remove_needs_no_reauthentication(client, alice):
    _must_log_in(client, alice.email, ALICE_PW)
    _age_authentication(client)
    c = _connection(alice)
    url = reverse("exchanges:connection-remove", args=[c.pk])
    assert client.get(url).status_code == 200
    assert client.post(url).status_code == 302
    assert not ExchangeConnection.objects.filter(pk=c.pk).exists()


# --- Delete account ----------------------------------------------------------------------------


def test_delete_account_needs_reauthentication_then_destroys_every_key(client, alice, bob):
    kept = _connection(bob, 7)
    mine = [_connection(alice, 1), _connection(alice, 2, status=Status.VERIFYING, established=False)]
    services.connection_replace_keys(connection=mine[0], access_key="pend1234-5678-aaaa", secret_key="P" * 30)
    _must_log_in(client, alice.email, ALICE_PW)
    url = reverse("accounts:delete")

    response = client.get(url)
    assert _reauth_page(response) and url in unquote(response["Location"])
    response = client.post(url, {"confirm": "DELETE"})  # a stale POST does not delete either
    assert User.objects.filter(pk=alice.pk).exists()
    assert ExchangeConnection.objects.filter(owner=alice).count() == 2

    _reauthenticate_by_password(client, ALICE_PW)
    assert client.get(url).status_code == 200
    client.post(url, {"confirm": "delete"})  # the confirmation must be exact
    assert User.objects.filter(pk=alice.pk).exists()

    response = client.post(url, {"confirm": "DELETE"})
    assert response.status_code == 302
    assert not User.objects.filter(pk=alice.pk).exists()
    table = ExchangeConnection._meta.db_table
    with db.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table} WHERE owner_id = %s", [alice.pk])  # noqa: S608
        assert cursor.fetchone()[0] == 0
        cursor.execute(f"SELECT id FROM {table}")  # noqa: S608
        assert [r[0] for r in cursor.fetchall()] == [kept.pk]
    assert not SecurityEvent.objects.filter(user_id=alice.pk).exists()
    assert not _logged_in(client)
    assert (
        not Session.objects.filter(session_key=_session_key(client) or "")
        .filter(session_data__contains="_auth_user_id")
        .exists()
    )


def test_delete_account_is_all_or_nothing(client, alice, monkeypatch):
    """If anything fails half-way, nothing is deleted (one transaction)."""
    from django.db.models.signals import post_delete

    for n in range(3):
        _connection(alice, n)
    _must_log_in(client, alice.email, ALICE_PW)
    _reauthenticate_by_password(client, ALICE_PW)
    deleted = []

    def boom(sender, instance, **kwargs):
        deleted.append(instance.pk)
        if len(deleted) == 2:
            raise RuntimeError("disk full")

    post_delete.connect(boom, sender=ExchangeConnection)
    try:
        with pytest.raises(RuntimeError):
            client.post(reverse("accounts:delete"), {"confirm": "DELETE"})
    finally:
        post_delete.disconnect(boom, sender=ExchangeConnection)
    assert User.objects.filter(pk=alice.pk).exists()
    assert ExchangeConnection.objects.filter(owner=alice).count() == 3


# --- Security log ------------------------------------------------------------------------------


def test_security_log_shows_what_happened_to_the_account_and_only_to_its_owner(alice, bob, sandbox):
    client = Client(REMOTE_ADDR="198.51.100.23")
    _login(client, alice.email, "wrong-password-1")
    _must_log_in(client, alice.email, ALICE_PW)
    client.post(
        reverse("account_change_password"),
        {"oldpassword": ALICE_PW, "password1": NEW_PW, "password2": NEW_PW},
    )

    connection = services.connection_create(
        owner=alice, exchange="htx", label="Main", access_key=GOOD[0], secret_key=GOOD[1]
    )
    assert keycheck.connection_check(connection_id=connection.pk) == Status.CONNECTED
    new_key, new_secret = "demoAAAA-11112222-33334444-55555", "ffff0000-11112222-33334444-aaaaa"
    sandbox.accounts[new_key] = {k: v for k, v in sandbox.accounts[GOOD[0]].items() if k != "accounts"}
    sandbox.accounts[new_key]["secret"] = new_secret
    services.connection_replace_keys(
        connection=ExchangeConnection.objects.get(pk=connection.pk), access_key=new_key, secret_key=new_secret
    )
    assert keycheck.connection_check(connection_id=connection.pk) == Status.CONNECTED
    assert client.post(reverse("exchanges:connection-remove", args=[connection.pk])).status_code == 302

    kinds = set(SecurityEvent.objects.filter(user=alice).values_list("kind", flat=True))
    K = SecurityEvent.Kind
    expected = {K.LOGIN, K.LOGIN_FAILED, K.PASSWORD_CHANGED, K.KEY_ADDED, K.KEY_REPLACED, K.KEY_REMOVED}
    assert expected - kinds == set(), f"missing from the security log: {expected - kinds}"
    page = _log_page(client)
    for kind in expected:
        assert K(kind).label in page
    assert "198.51.100.23" in page
    assert new_secret not in page and GOOD[1] not in page and GOOD[0] not in page

    other = Client(REMOTE_ADDR="203.0.113.99")
    _must_log_in(other, bob.email, BOB_PW)
    theirs = _log_page(other)
    assert "Signed in" in theirs  # bob's own event
    for text in ("198.51.100.23", "Failed sign-in", "Password changed", "API key", "demo"):
        assert text not in theirs
    tampered = other.get(reverse("accounts:security-log"), {"user": alice.pk, "user_id": alice.pk})
    assert "198.51.100.23" not in tampered.content.decode()


# --- Account settings --------------------------------------------------------------------------


def test_settings_save_and_the_refresh_interval_drives_scheduling(client, alice, sandbox):
    _must_log_in(client, alice.email, ALICE_PW)
    response = client.post(
        reverse("accounts:settings"), {"valuation_currency": "BTC", "refresh_minutes": "15"}
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert (alice.valuation_currency, alice.refresh_minutes, alice.refresh_seconds) == ("BTC", 15, 900)

    connection = services.connection_create(
        owner=alice, exchange="htx", label="", access_key=GOOD[0], secret_key=GOOD[1]
    )
    before = timezone.now()
    assert keycheck.connection_check(connection_id=connection.pk) == Status.CONNECTED
    connection.refresh_from_db()
    # 15 minutes with the scheduler's ±10 % jitter (the site default is 5).
    assert timedelta(minutes=13.4) < connection.next_check_at - before < timedelta(minutes=16.6)

    client.post(reverse("accounts:settings"), {"valuation_currency": "USDT", "refresh_minutes": ""})
    alice.refresh_from_db()
    assert alice.refresh_minutes is None
    assert alice.refresh_seconds == django_settings.BALANCE_REFRESH_SECONDS


@pytest.mark.parametrize(
    "data",
    [
        {"valuation_currency": "EUR", "refresh_minutes": "15"},
        {"valuation_currency": "BTC", "refresh_minutes": "1"},
        {"valuation_currency": "BTC", "refresh_minutes": "0"},
        {"valuation_currency": "BTC", "refresh_minutes": "-5"},
        {"valuation_currency": "BTC", "refresh_minutes": "100000"},
        {"valuation_currency": "btc", "refresh_minutes": "15"},
        {"refresh_minutes": "15"},
    ],
)
def test_invalid_settings_are_refused_and_change_nothing(client, alice, data):
    _must_log_in(client, alice.email, ALICE_PW)
    response = client.post(reverse("accounts:settings"), data)
    assert response.status_code == 200
    assert response.context["form"].errors
    alice.refresh_from_db()
    assert (alice.valuation_currency, alice.refresh_minutes) == ("USDT", None)
    assert not SecurityEvent.objects.filter(user=alice, kind=SecurityEvent.Kind.SETTINGS_CHANGED).exists()


# --- Abuse -------------------------------------------------------------------------------------


def _fake_key(owner_pk: int, n: int) -> dict:
    return {
        "label": "",
        "access_key": f"fake{owner_pk:04d}-{n:04d}-aaaa-bbbb-cccc",
        "secret_key": f"FAKESECRET-{owner_pk:04d}-{n:04d}-dddd",
    }


def test_connect_attempts_are_rate_limited_per_user(alice):
    client = Client(REMOTE_ADDR="198.51.100.40")
    client.force_login(alice)
    url = reverse("exchanges:connection-add-venue", args=["htx"])
    for n in range(10):
        response = client.post(url, _fake_key(alice.pk, n))
        assert response.status_code == 302, n
    assert ExchangeConnection.objects.filter(owner=alice).count() == 10

    response = client.post(url, _fake_key(alice.pk, 10))
    assert response.status_code == 200
    assert CONNECT_LIMIT_MESSAGE in response.content.decode()
    assert "You have tried 10 keys from this account in the last hour" in response.content.decode()
    assert ExchangeConnection.objects.filter(owner=alice).count() == 10
    # From another address too: the limit follows the account.
    elsewhere = Client(REMOTE_ADDR="192.0.2.200")
    elsewhere.force_login(alice)
    assert CONNECT_LIMIT_MESSAGE in elsewhere.post(url, _fake_key(alice.pk, 11)).content.decode()
    assert ExchangeConnection.objects.filter(owner=alice).count() == 10


def test_connect_attempts_are_rate_limited_per_ip(django_user_model):
    url = reverse("exchanges:connection-add-venue", args=["htx"])
    users = [
        django_user_model.objects.create_user(username=f"u{i}", email=f"u{i}@example.com", password="x")
        for i in range(5)
    ]
    sent = 0
    for user in users[:3]:
        client = Client(REMOTE_ADDR="198.51.100.77")
        client.force_login(user)
        for n in range(10):
            assert client.post(url, _fake_key(user.pk, n)).status_code == 302
            sent += 1
    assert sent == 30 == ExchangeConnection.objects.count()

    fourth = Client(REMOTE_ADDR="198.51.100.77")
    fourth.force_login(users[3])
    response = fourth.post(url, _fake_key(users[3].pk, 0))
    assert CONNECT_LIMIT_MESSAGE in response.content.decode()
    assert ExchangeConnection.objects.count() == 30
    # A forged X-Forwarded-For does not buy a new budget (the first entry is the client's
    # claim; a proxy in front would append the address it really saw).
    forged = fourth.post(url, _fake_key(users[3].pk, 1), HTTP_X_FORWARDED_FOR="192.0.2.1, 198.51.100.77")
    assert CONNECT_LIMIT_MESSAGE in forged.content.decode()
    assert ExchangeConnection.objects.count() == 30

    # The limit is the address's, not the site's: another address still connects.
    elsewhere = Client(REMOTE_ADDR="192.0.2.55")
    elsewhere.force_login(users[4])
    assert elsewhere.post(url, _fake_key(users[4].pk, 0)).status_code == 302
    assert ExchangeConnection.objects.count() == 31


def test_behind_the_tls_proxy_per_ip_limits_see_the_client_not_the_proxy(rf, settings):
    """Production sits behind a reverse proxy (SECURE_PROXY_SSL_HEADER). There REMOTE_ADDR is
    the proxy's, so unless allauth is told which header carries the client's address, every
    per-IP limit (connect 30/h, login, sign-up) is shared by all users: one abuser locks out
    everyone, and the security log records the proxy's address."""
    from allauth.account.adapter import get_adapter

    # Production's defaults (BEHIND_TLS_PROXY on), whatever this run's environment says.
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    request = rf.get(
        "/",
        REMOTE_ADDR="10.0.0.2",  # the proxy
        HTTP_X_FORWARDED_FOR="203.0.113.5",
        HTTP_X_REAL_IP="203.0.113.5",
        HTTP_X_FORWARDED_PROTO="https",
    )
    assert get_adapter().get_client_ip(request) == "203.0.113.5"


def test_a_withdraw_enabled_key_is_never_stored_not_even_encrypted(alice, sandbox):
    client = Client()
    client.force_login(alice)
    response = client.post(
        reverse("exchanges:connection-add-venue", args=["htx"]),
        {"label": "", "access_key": WITHDRAW[0], "secret_key": WITHDRAW[1]},
    )
    assert response.status_code == 302
    connection = ExchangeConnection.objects.get(owner=alice)
    assert keycheck.connection_check(connection_id=connection.pk) == Status.WITHDRAW_ENABLED

    row = _row(connection.pk)
    for column in ("access_key", "secret_key", "pending_access_key", "pending_secret_key"):
        assert row[column] is None, column
    assert row["access_key_fingerprint"] is None and row["pending_fingerprint"] is None
    for column, value in row.items():
        text = str(value)
        assert WITHDRAW[1] not in text and WITHDRAW[0] not in text, column
        assert "gAAAAA" not in text, column  # no Fernet token of any kind
    assert ExchangeConnection.objects.get(pk=connection.pk).status == Status.WITHDRAW_ENABLED


def test_failed_logins_on_one_account_are_throttled(alice):
    rates = [r for r in parse_rates(django_settings.ACCOUNT_RATE_LIMITS["login_failed"]) if r.per == "key"]
    assert rates, "failed logins must be limited per account"
    hourly_cap = min(r.amount * math.ceil(3600 / r.duration) for r in rates)
    assert hourly_cap <= 100
    assert min(r.amount for r in rates) <= 5

    client = Client(REMOTE_ADDR="198.51.100.9")
    for n in range(5):
        response = _login(client, alice.email, f"guess-{n}")
        assert "Too many failed login attempts" not in response.content.decode()
    # The attacker now guesses right: refused anyway, for a while.
    response = _login(client, alice.email, ALICE_PW)
    assert response.status_code in (200, 429)
    assert "Too many failed login attempts" in response.content.decode()
    assert not _logged_in(client)
    # From a fresh address too: the limit is the account's.
    other = Client(REMOTE_ADDR="192.0.2.77")
    assert "Too many failed login attempts" in _login(other, alice.email, ALICE_PW).content.decode()
    assert not _logged_in(other)


def _errors(response) -> str:
    html = response.content.decode()
    # Every error the form shows: the alert at its top and the ones beside fields.
    found = re.findall(r'<div class="[^"]*"[^>]*role="alert"[^>]*>.*?</div>', html, flags=re.S)
    assert found, html[:3000]
    return "\n".join(found)


def test_unknown_email_and_wrong_password_get_identical_answers(client, alice):
    wrong_password = _login(client, alice.email, "not-her-password")
    unknown_email = _login(Client(), "nobody-here@example.com", "not-her-password")
    assert wrong_password.status_code == unknown_email.status_code == 200
    assert _errors(wrong_password) == _errors(unknown_email)
    assert _errors(wrong_password).encode() == _errors(unknown_email).encode()

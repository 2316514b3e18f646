from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from exchanges.models import ExchangeConnection, Status
from exchanges.services import access_key_fingerprint

KEY = "demo1a2b-c3d4e5f6-0a1b2c3d-4e5f6"
SECRET = "5f2e8d1c-9a7b3c4d-11223344-aabbc"
HTMX = {"HTTP_HX_REQUEST": "true"}

pytestmark = pytest.mark.django_db


def _connection(owner, status=Status.CONNECTED, **fields):
    return ExchangeConnection.objects.create(
        owner=owner,
        access_key=KEY,
        secret_key=SECRET,
        access_key_fingerprint=access_key_fingerprint(KEY),
        access_key_head=KEY[:4],
        access_key_tail=KEY[-4:],
        status=status,
        **fields,
    )


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


def _urls(pk: int = 1) -> list[str]:
    return [
        reverse("exchanges:connection-list"),
        reverse("exchanges:connection-add"),
        reverse("exchanges:connection-add-venue", args=["htx"]),
        reverse("exchanges:connection-verification", args=[pk]),
        reverse("exchanges:connection-dismiss", args=[pk]),
    ]


@pytest.mark.parametrize("index", range(5))
def test_it_requires_login(client, index):
    url = _urls()[index]
    response = client.post(url) if "dismiss" in url else client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_the_empty_list_explains_connecting_and_that_keys_cannot_withdraw(alice_client):
    response = alice_client.get(reverse("exchanges:connection-list"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Connect your first exchange" in body
    assert "can never move money out" in body
    assert "Add New Exchange" in body


def test_the_list_shows_a_connected_key_masked_with_its_balance(alice_client, alice):
    _connection(alice, total_usdt="12345.678", label="Main")
    body = alice_client.get(reverse("exchanges:connection-list")).content.decode()
    assert "Main" in body and "demo…e5f6" in body
    assert "12,345.68 USDT" in body
    assert "Connected" in body
    assert SECRET not in body and KEY not in body


def test_an_htmx_request_gets_only_the_list_fragment(alice_client):
    response = alice_client.get(reverse("exchanges:connection-list"), **HTMX)
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="connection-list"')
    assert "<html" not in body


def test_the_add_dialog_is_a_dialog_for_htmx_and_a_page_without_js(alice_client):
    url = reverse("exchanges:connection-add")
    dialog = alice_client.get(url, **HTMX).content.decode()
    page = alice_client.get(url).content.decode()
    assert dialog.lstrip().startswith("<dialog") and "<html" not in dialog
    assert "<html" in page and "<dialog" not in page
    for body in (dialog, page):
        assert reverse("exchanges:connection-add-venue", args=["htx"]) in body


def test_a_step_inside_the_open_dialog_gets_only_the_dialog_content(alice_client):
    body = alice_client.get(
        reverse("exchanges:connection-add-venue", args=["htx"]), HTTP_HX_TARGET="modal-body", **HTMX
    ).content.decode()
    assert "<dialog" not in body and "<html" not in body
    assert 'name="secret_key"' in body


def test_connecting_stores_the_key_encrypted_and_queues_verification_after_commit(
    alice_client, alice, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = alice_client.post(
            reverse("exchanges:connection-add-venue", args=["htx"]),
            {"label": "Main", "access_key": KEY, "secret_key": SECRET},
        )
    connection = ExchangeConnection.objects.get(owner=alice)
    assert response.status_code == 302
    assert response["Location"] == reverse("exchanges:connection-verification", args=[connection.pk])
    assert connection.status == Status.VERIFYING
    assert connection.masked_access_key == "demo…e5f6"
    assert (connection.access_key, connection.secret_key) == (KEY, SECRET)
    assert len(callbacks) == 1


def test_an_htmx_connect_answers_with_the_live_verification_fragment(alice_client):
    response = alice_client.post(
        reverse("exchanges:connection-add-venue", args=["htx"]),
        {"label": "", "access_key": KEY, "secret_key": SECRET},
        HTTP_HX_TARGET="modal-body",
        **HTMX,
    )
    body = response.content.decode()
    assert response["HX-Trigger"] == "connectionChanged"
    assert 'data-status="verifying"' in body
    assert 'hx-trigger="load delay:250ms"' in body  # a worker usually answers within a second
    assert "Verifying your key with HTX" in body
    pk = ExchangeConnection.objects.get().pk
    ExchangeConnection.objects.filter(pk=pk).update(updated_at=timezone.now() - timedelta(seconds=5))
    later = alice_client.get(reverse("exchanges:connection-verification", args=[pk]), **HTMX)
    assert 'hx-trigger="load delay:1s"' in later.content.decode()  # then once a second


def test_bad_input_gets_a_clear_message_and_changes_nothing(alice_client):
    response = alice_client.post(
        reverse("exchanges:connection-add-venue", args=["htx"]),
        {"label": "", "access_key": " ", "secret_key": "ключ"},
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "Paste your HTX API Key." in body
    assert "characters HTX never uses" in body
    assert ExchangeConnection.objects.count() == 0


def test_the_secret_is_never_sent_back_to_the_browser(alice_client):
    response = alice_client.post(
        reverse("exchanges:connection-add-venue", args=["htx"]),
        {"label": "", "access_key": "x", "secret_key": SECRET},
    )
    assert SECRET not in response.content.decode()


def test_a_connected_verification_closes_the_dialog_and_refreshes_the_list(alice_client, alice):
    connection = _connection(alice, total_usdt="10")
    response = alice_client.get(
        reverse("exchanges:connection-verification", args=[connection.pk]),
        HTTP_HX_TARGET="modal-body",
        **HTMX,
    )
    assert json.loads(response["HX-Trigger"]) == {
        "connectionChanged": True,
        "closeModal": True,
        # Said at once on the page (static/js/app.js), the venue named once without a label.
        "showMessage": {"text": "HTX · API key demo…e5f6 connected. Trading balance 10.00 USDT."},
    }
    assert "hx-get" not in response.content.decode()


def test_without_js_a_connected_verification_redirects_to_the_list(alice_client, alice):
    connection = _connection(alice)
    response = alice_client.get(reverse("exchanges:connection-verification", args=[connection.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("exchanges:connection-list")


def test_without_js_a_pending_verification_page_refreshes_itself(alice_client, alice):
    connection = _connection(alice, status=Status.VERIFYING)
    body = alice_client.get(
        reverse("exchanges:connection-verification", args=[connection.pk])
    ).content.decode()
    assert '<meta http-equiv="refresh" content="2">' in body


def test_a_failed_verification_keeps_the_dialog_open_with_the_reason_and_a_new_form(alice_client, alice):
    connection = _connection(
        alice,
        status=Status.IP_NOT_ALLOWED,
        error_kind="ip_not_allowed",
        error_detail="api-signature-not-valid: Signature not valid: Incorrect IP address",
    )
    response = alice_client.get(
        reverse("exchanges:connection-verification", args=[connection.pk]),
        HTTP_HX_TARGET="modal-body",
        **HTMX,
    )
    body = response.content.decode()
    assert json.loads(response["HX-Trigger"]) == {"connectionChanged": True}
    assert "This key only works from other IP addresses" in body
    assert "Incorrect IP address" in body  # raw detail, in a disclosure
    assert 'name="secret_key"' in body


def test_another_users_connection_is_not_found(client, alice, bob):
    connection = _connection(alice)
    client.force_login(bob)
    assert client.get(reverse("exchanges:connection-verification", args=[connection.pk])).status_code == 404
    failed = ExchangeConnection.objects.create(owner=alice, status=Status.INVALID)
    assert client.post(reverse("exchanges:connection-dismiss", args=[failed.pk])).status_code == 404
    assert ExchangeConnection.objects.filter(pk=failed.pk).exists()
    assert KEY[:4] not in client.get(reverse("exchanges:connection-list")).content.decode()


@pytest.mark.parametrize("name", ["exchanges:connection-list", "exchanges:connection-add"])
def test_read_only_pages_refuse_post(alice_client, name):
    assert alice_client.post(reverse(name)).status_code == 405


def test_connecting_without_a_csrf_token_is_refused(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(
        reverse("exchanges:connection-add-venue", args=["htx"]),
        {"label": "", "access_key": KEY, "secret_key": SECRET},
        **HTMX,
    )
    assert response.status_code == 403
    assert ExchangeConnection.objects.count() == 0


def test_a_failed_attempt_can_be_dismissed(alice_client, alice):
    failed = ExchangeConnection.objects.create(owner=alice, status=Status.EXPIRED, error_kind="key_expired")
    body = alice_client.get(reverse("exchanges:connection-list")).content.decode()
    assert "Dismiss" in body and "The key was not stored." in body
    response = alice_client.post(reverse("exchanges:connection-dismiss", args=[failed.pk]), **HTMX)
    assert response["HX-Trigger"] == "connectionChanged"
    assert not ExchangeConnection.objects.filter(pk=failed.pk).exists()


def test_a_working_connection_cannot_be_dismissed(alice_client, alice):
    connection = _connection(alice, status=Status.CONNECTED, established=True)
    response = alice_client.post(reverse("exchanges:connection-dismiss", args=[connection.pk]), follow=True)
    assert "is connected now; use Remove to delete it." in response.content.decode()
    assert alice_client.get(reverse("exchanges:connection-dismiss", args=[connection.pk])).status_code == 405
    assert ExchangeConnection.objects.filter(pk=connection.pk).exists()


def test_a_first_attempt_still_being_retried_can_be_given_up_with_its_key(alice_client, alice):
    connection = _connection(alice, status=Status.TEMPORARY, error_kind="unavailable")
    body = alice_client.get(reverse("exchanges:connection-list")).content.decode()
    assert "Stop trying and delete the key" in body
    alice_client.post(reverse("exchanges:connection-dismiss", args=[connection.pk]))
    assert not ExchangeConnection.objects.filter(pk=connection.pk).exists()


def test_dismissing_without_a_csrf_token_is_refused(alice):
    failed = ExchangeConnection.objects.create(owner=alice, status=Status.INVALID)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(reverse("exchanges:connection-dismiss", args=[failed.pk]), **HTMX).status_code == 403
    assert ExchangeConnection.objects.filter(pk=failed.pk).exists()


def test_the_verification_page_refuses_post(alice_client, alice):
    connection = _connection(alice)
    assert (
        alice_client.post(reverse("exchanges:connection-verification", args=[connection.pk])).status_code
        == 405
    )


def test_a_full_page_form_posts_plainly_even_with_javascript(alice_client):
    # Reached after a login redirect or in a new tab: there is no dialog to target.
    for url in (reverse("exchanges:connection-add"), reverse("exchanges:connection-add-venue", args=["htx"])):
        body = alice_client.get(url).content.decode()
        assert "#modal-body" not in body


def test_two_simultaneous_submissions_of_one_key_do_not_crash(alice_client, alice, bob):
    from exchanges import services

    services.connection_create(owner=bob, exchange="htx", label="", access_key=KEY, secret_key=SECRET)
    services.connection_create(owner=alice, exchange="htx", label="", access_key=KEY, secret_key=SECRET)
    # Both wait for their check; the exchange's verdict decides which one keeps the key
    # (tests/security/test_key_in_use.py).
    assert ExchangeConnection.objects.filter(status=Status.VERIFYING).count() == 2


def test_the_portfolio_total_counts_only_working_connections(alice_client, alice):
    ExchangeConnection.objects.create(owner=alice, status=Status.CONNECTED, total_usdt="100")
    ExchangeConnection.objects.create(owner=alice, status=Status.TEMPORARY, total_usdt="20")
    ExchangeConnection.objects.create(owner=alice, status=Status.EXPIRED, total_usdt="5000")
    body = alice_client.get(reverse("exchanges:connection-list")).content.decode()
    assert 'data-testid="portfolio-total">120.00 <span>USDT</span>' in body


def test_the_list_polls_only_while_something_is_pending(alice_client, alice):
    url = reverse("exchanges:connection-list")
    assert "every" not in alice_client.get(url, **HTMX).content.decode()
    connection = _connection(alice, status=Status.TEMPORARY)
    assert "every 10s" in alice_client.get(url, **HTMX).content.decode()
    ExchangeConnection.objects.filter(pk=connection.pk).update(status=Status.VERIFYING)
    assert "every 500ms" in alice_client.get(url, **HTMX).content.decode()  # the row polls itself


def test_an_ip_refusal_names_the_address_htx_saw(alice_client, alice):
    connection = _connection(
        alice,
        status=Status.IP_NOT_ALLOWED,
        error_kind="ip_not_allowed",
        error_detail="api-signature-not-valid: Signature not valid: "
        "Incorrect IP address [IP地址错误]:198.51.100.4",
    )
    body = alice_client.get(
        reverse("exchanges:connection-verification", args=[connection.pk])
    ).content.decode()
    assert "add 198.51.100.4 (the address HTX saw our request come from)" in body


def test_a_connection_shows_what_htx_told_us_about_the_key(alice_client, alice):
    from django.utils import timezone

    _connection(
        alice,
        established=True,
        last_verified_at=timezone.now(),
        permissions="readOnly,trade",
        key_flags=[
            ["Read", True, False, True],
            ["Trade", True, False, True],
            ["Withdraw", False, True, False],
        ],
        ip_addresses="203.0.113.7",
        account_uid="63628520",
        clock_skew_ms=-4200,
        accounts_read=["spot", "otc"],
        unpriced=["xyz"],
        total_usdt="1",
    )
    body = alice_client.get(reverse("exchanges:connection-list")).content.decode()
    assert "Read on" in body and "Trade on" in body and "Withdraw off" in body
    assert "203.0.113.7" in body and "63628520" in body
    assert "4.2 s ahead of HTX" in body
    assert "spot, otc" in body
    assert "1 asset with no price on HTX: XYZ" in body


def test_a_sub_user_key_says_what_could_not_be_checked(alice_client, alice):
    from django.utils import timezone

    _connection(alice, established=True, last_verified_at=timezone.now(), key_info_known=False)
    body = alice_client.get(reverse("exchanges:connection-list")).content.decode()
    assert "permissions, IP binding and expiry could not be checked" in body

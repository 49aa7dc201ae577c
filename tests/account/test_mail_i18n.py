"""Emails in the citizen's language: the language of the request that sends them, French by default.

The emails go through a real flow (a forgotten password) and the real SMTP server of the tests.
``test_the_language_switch_makes_the_email_english`` needs the English translations of the emails
in broker/translations (messages.po/.mo); the other tests hold whatever the catalogue says.
"""

from __future__ import annotations

import re

from tests.account.conftest import SENDER, html_of, link_in, submit, text_of
from tests.conftest import csrf_of

EMAIL = "citoyen@example.nc"
RESET_PAGE = "/compte/mot-de-passe-oublie"


def body(message) -> str:
    return text_of(message).replace("\r\n", "\n")  # SMTP carries CRLF line ends


def choose_language(client, lang: str) -> None:
    """The language switch in the header of the forgotten-password page, as a citizen would use it."""
    html = client.get(RESET_PAGE).get_data(as_text=True)
    form = re.search(r'<form method="post" action="/langue".*?</form>', html, re.S).group(0)
    next_page = re.search(r'name="next" value="([^"]*)"', form).group(1)
    response = client.post("/langue", data={"csrf_token": csrf_of(html), "lang": lang, "next": next_page})
    assert response.status_code == 303 and response.headers["Location"] == RESET_PAGE


def test_without_a_choice_the_email_is_french(client, account, mailbox):
    assert submit(client, RESET_PAGE, {"email": EMAIL}).status_code == 303
    message = mailbox.last(EMAIL)
    assert message["Content-Language"] == "fr" and '<html lang="fr">' in html_of(message)
    assert message["Subject"] == "Choisissez un nouveau mot de passe NC Connect"
    text = body(message)
    assert text.startswith("Bonjour,\n\nUne demande de nouveau mot de passe a été faite pour votre compte NC Connect.")
    assert "Ce lien est valable 20 minutes et ne sert qu'une fois." in text
    assert "NC Connect — le sésame numérique des services publics de Nouvelle-Calédonie." in text


def test_the_language_switch_makes_the_email_english(client, account, mailbox):
    """Needs the English translations of the emails in messages.po/.mo."""
    choose_language(client, "en")
    assert submit(client, RESET_PAGE, {"email": EMAIL}).status_code == 303
    message = mailbox.last(EMAIL)
    assert message["Content-Language"] == "en" and '<html lang="en">' in html_of(message)
    assert message["Subject"] == "Choose a new NC Connect password"
    text = body(message)
    assert text.startswith("Hello,\n\nA new password was requested for your NC Connect account.")
    assert "This link is valid for 20 minutes and works only once." in text
    assert "NC Connect — your digital key to New Caledonia's public services." in text
    assert "Bonjour" not in text and "courriel" not in text
    assert link_in(message).startswith("/compte/nouveau-mot-de-passe?jeton=")  # the same link, whatever the language
    html = html_of(message)
    assert "<title>Choose a new NC Connect password</title>" in html and "This link is valid for 20 minutes" in html


def test_an_email_follows_each_request_not_the_last_one(app, client, account, mailbox):
    from tests.account.conftest import new_browser

    choose_language(client, "en")
    submit(client, RESET_PAGE, {"email": EMAIL})
    english = mailbox.last(EMAIL)
    mailbox.clear()
    submit(new_browser(app), RESET_PAGE, {"email": EMAIL})  # another browser, no choice made
    french = mailbox.last(EMAIL)
    assert (english["Content-Language"], french["Content-Language"]) == ("en", "fr")
    assert french["Subject"] == "Choisissez un nouveau mot de passe NC Connect"


def test_outside_a_request_an_email_is_french(app):
    from broker.config import SmtpSettings
    from broker.mail import build_message

    with app.app_context():  # no request: no citizen's language to follow
        message = build_message(SmtpSettings(host="smtp.gouv.nc", sender=SENDER), "a@example.nc", "signup_verify",
                                link="https://nc-connect.test/compte/confirmer?jeton=abc", hours=1)
    assert message["Content-Language"] == "fr" and '<html lang="fr">' in html_of(message)
    assert message["Subject"] == "Confirmez votre adresse pour créer votre compte NC Connect"
    assert "Ce lien est valable 1 heure et ne sert qu'une fois." in body(message)  # the singular

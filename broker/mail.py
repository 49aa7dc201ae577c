"""Outgoing email over SMTP (``smtp`` in ``broker.yaml``): verification links, reset links, notices.

Every message is plain text and HTML, signed with the broker's name, in the citizen's language: the
language of the request that sends it (``broker.ui.select_language``: the language switch's cookie,
else the ``ui_locales`` of the pending authorization request), French when there is none (a message
sent outside a request); ``Content-Language`` and the HTML ``lang`` say which (a sentence not
translated yet stays in French).  No tracking: no remote images, no pixel, no redirecting or tagged
links; the only links point at the broker's own issuer URL.  Messages are rendered from
``templates/account/email/<name>.txt``, every sentence through ``_()`` with the French text as
msgid: its first line is the subject, the rest the plain text body; the HTML body is the same text
laid out by ``_layout.html`` (paragraphs, links made clickable).  Links and codes never reach the
logs.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid

from flask import current_app
from flask_babel import force_locale
from markupsafe import Markup, escape

from broker.config import SmtpSettings
from broker.ui import LOCALES, current_language

log = logging.getLogger("nc_connect.mail")
BROKER_NAME = "NC Connect"


class MailError(Exception):
    pass


_URL = re.compile(r"https?://[^\s<>\"]+")


def _html_paragraphs(text: str) -> list[Markup]:
    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        escaped = str(escape(block))
        linked = _URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped)
        out.append(Markup(linked.replace("\n", "<br>\n")))
    return out


def _render(name: str, **context) -> str:
    # The application's templates without the pages' context processors, which need a request.
    return current_app.jinja_env.get_template(f"account/email/{name}").render(**context)


def build_message(settings: SmtpSettings, to: str, template: str, **context) -> EmailMessage:
    """The message in the page's language (French outside a request); needs the application context."""
    context.setdefault("broker_name", BROKER_NAME)
    lang = current_language()
    with force_locale(LOCALES[lang]):
        subject, _, text = _render(f"{template}.txt", **context).partition("\n")
        text = text.strip("\n") + "\n"
        html = _render("_layout.html", lang=lang, broker_name=context["broker_name"], subject=subject.strip(),
                       paragraphs=_html_paragraphs(text))
    message = EmailMessage()
    message["From"] = formataddr((BROKER_NAME, settings.sender))
    message["To"] = to
    message["Subject"] = subject.strip()
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2])
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies
    # 8bit keeps long links on one line in every mail client (and in the demo mailbox's output)
    message.set_content(text, cte="8bit")
    message.add_alternative(html, subtype="html", cte="8bit")
    message["Content-Language"] = lang  # after the body: set_content() drops Content-* headers
    return message


def send(settings: SmtpSettings | None, to: str, template: str, **context) -> None:
    """Send one message; raises MailError when the server cannot be reached or refuses it."""
    if settings is None:
        raise MailError("no smtp server is configured")
    message = build_message(settings, to, template, **context)
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as smtp:
            if settings.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.username and settings.password:
                smtp.login(settings.username, settings.password)
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        # the message (links, codes) is never logged; the recipient's domain only
        log.warning("email %s to *@%s not sent: %s", template, to.rpartition("@")[2], exc)
        raise MailError(str(exc)) from None
    log.info("email %s sent to *@%s", template, to.rpartition("@")[2])

"""Outgoing email over SMTP (``smtp`` in ``broker.yaml``): verification links, reset links, notices.

Every message is in French, plain text and HTML, signed with the broker's name.  No
tracking: no remote images, no pixel, no redirecting or tagged links; the only links
point at the broker's own issuer URL.  Messages are rendered from
``templates/account/email/<name>.txt``: its first line is the subject, the rest the
plain text body; the HTML body is the same text laid out by ``_layout.html`` (paragraphs,
links made clickable).  Links and codes never reach the logs.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid

from flask import render_template
from markupsafe import Markup, escape

from broker.config import SmtpSettings

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


def build_message(settings: SmtpSettings, to: str, template: str, **context) -> EmailMessage:
    context.setdefault("broker_name", BROKER_NAME)
    subject, _, text = render_template(f"account/email/{template}.txt", **context).partition("\n")
    text = text.strip("\n") + "\n"
    html = render_template("account/email/_layout.html", subject=subject.strip(), paragraphs=_html_paragraphs(text))
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
    message["Content-Language"] = "fr"  # after the body: set_content() drops Content-* headers
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

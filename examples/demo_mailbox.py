"""The demo's mail server: receives NC Connect's emails on localhost and prints them.

A newcomer running ``make demo`` sees here the verification and password reset links
the broker sends (``smtp`` in ``config/broker.yaml`` points at it).  Never for
production: it accepts any message and delivers none.  DEMO_SMTP_PORT (default 1025).
"""

from __future__ import annotations

import email
import email.policy
import os
import signal
import threading

from aiosmtpd.controller import Controller

PORT = int(os.environ.get("DEMO_SMTP_PORT", "1025"))


class Printer:
    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(("plain",))
        print("\n" + "=" * 72, flush=False)
        print(f"Courriel pour {', '.join(envelope.rcpt_tos)} — {message['Subject']}")
        print("-" * 72)
        print(body.get_content().rstrip() if body else "(pas de texte)")
        print("=" * 72, flush=True)
        return "250 OK"


def main() -> None:
    controller = Controller(Printer(), hostname="127.0.0.1", port=PORT)
    controller.start()
    print(f"Demo mailbox listening on 127.0.0.1:{PORT}; NC Connect's emails are printed here.", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    controller.stop()


if __name__ == "__main__":
    main()

"""Local accounts, the citizen's side: sign-up, email verification, password reset, email
change, the second factor (TOTP and recovery codes) and the citizen's space ``/compte``.

One blueprint, ``account``; each module adds its routes to it.
"""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("account", __name__)

from broker.account import mfa, recovery, signup, space  # noqa: E402,F401  (routes)

"""From an upstream identity to a citizen's account: mapping and the linking policy.

* An upstream identity already linked signs its account in.
* A new one is mapped into the pivot identity.  It is linked to an existing
  account automatically only when both sides come from sources of substantial
  assurance (eidas2+) and every pivot field matches exactly.  Any other match
  (same pivot identity, same email) is never linked by itself: the citizen
  proves control of the existing account by logging in with it, or chooses a
  new account.  Otherwise a new account is created from the pivot identity.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from broker import accounts
from broker.app import Broker
from providers.base import UpstreamError, UpstreamIdentity, level_rank

audit = logging.getLogger("nc_connect.audit")
SUBSTANTIAL = level_rank("eidas2")


@dataclass
class Resolution:
    account_id: str | None = None
    # set when the citizen must prove control of one of these accounts before a link is made
    candidates: list[str] = field(default_factory=list)
    pivot: dict[str, Any] = field(default_factory=dict)


def map_identity(broker: Broker, identity: UpstreamIdentity) -> dict[str, Any]:
    mapping = broker.mappings.get(identity.provider_id)
    if mapping is None:
        return dict(identity.attributes)
    result = mapping.apply(dict(identity.attributes))
    if not result.ok:
        raise UpstreamError(
            "Les informations d'identité transmises par ce fournisseur sont incomplètes ou invalides.",
            # claim names only: the values are personal data and stay out of the logs
            detail=f"mapping of {identity.provider_id} failed for {sorted(result.errors)}",
        )
    return dict(result.pivot)


def resolve(broker: Broker, identity: UpstreamIdentity) -> Resolution:
    account_id = accounts.linked_account(broker.sessions, identity.provider_id, identity.subject)
    if account_id:
        return Resolution(account_id=account_id)
    pivot = map_identity(broker, identity)
    candidates = accounts.matching_accounts(broker.sessions, pivot)
    automatic = [a for a in candidates if accounts.identity_matches(a, pivot)
                 and level_rank(a.identity_level) >= SUBSTANTIAL and level_rank(identity.acr) >= SUBSTANTIAL]
    if len(automatic) == 1:
        accounts.link(broker.sessions, automatic[0].id, identity.provider_id, identity.subject, identity.acr)
        audit.info("link automatic account=%s source=%s", automatic[0].id, identity.provider_id)
        return Resolution(account_id=automatic[0].id)
    if candidates:
        return Resolution(candidates=[a.id for a in candidates], pivot=pivot)
    return Resolution(account_id=create(broker, identity, pivot))


def create(broker: Broker, identity: UpstreamIdentity, pivot: dict[str, Any]) -> str:
    account = accounts.create_from_upstream(broker.sessions, identity.provider_id, identity.subject, identity.acr, pivot)
    audit.info("account created account=%s source=%s", account.id, identity.provider_id)
    return account.id


def link_after_proof(broker: Broker, account_id: str, pending: dict[str, Any]) -> bool:
    """The citizen just logged in as ``account_id``: link the pending upstream identity if it was a candidate."""
    if account_id not in pending["candidates"]:
        return False
    accounts.link(broker.sessions, account_id, pending["provider_id"], pending["subject"], pending["acr"])
    audit.info("link proven account=%s source=%s", account_id, pending["provider_id"])
    return True

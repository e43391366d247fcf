"""API tokens: created with a secret shown once, stored as its SHA-256 digest, checked and revoked."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import insert, select, update

from gridshift.service.store.base import TOKENS, InvalidSpec, StoreBase, utcnow
from gridshift.service.store.rows import Principal, TokenInfo
from gridshift.service.tables import ROLES

TOKEN_PREFIX = "gs"


def hash_secret(secret: str) -> str:
    """SHA-256 hex digest of a token secret (what the tokens table stores)."""
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore(StoreBase):
    """Tokens: :meth:`create_token`, :meth:`authenticate`, :meth:`revoke_token`, :meth:`list_tokens`."""

    def create_token(self, name: str, role: str, tenant: str | None = None) -> tuple[str, str]:
        """Create an API token; returns (token id, secret). The secret is shown once and stored hashed."""
        if role not in ROLES:
            raise InvalidSpec(f"unknown role '{role}' (expected one of {', '.join(ROLES)})", field="role")
        if (role == "tenant") != bool(tenant):
            raise InvalidSpec("a tenant token needs a tenant; operator and grid tokens have none", field="tenant")
        token_id = secrets.token_hex(6)
        secret = f"{TOKEN_PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"
        with self._tx() as conn:
            conn.execute(insert(TOKENS), {"id": token_id, "name": name, "role": role, "tenant": tenant,
                                          "token_hash": hash_secret(secret), "created_at": utcnow(),
                                          "revoked_at": None})
        return token_id, secret

    def authenticate(self, secret: str) -> Principal | None:
        """The principal of a valid, unrevoked token secret; None otherwise."""
        parts = secret.split("_", 2) if isinstance(secret, str) else []
        if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
            return None
        with self._tx(readonly=True) as conn:
            row = conn.execute(select(TOKENS).where(TOKENS.c.id == parts[1])).mappings().first()
        if row is None or not hmac.compare_digest(row["token_hash"], hash_secret(secret)):
            return None
        if row["revoked_at"] is not None:
            return None
        return Principal(row["role"], row["tenant"], row["id"])

    def revoke_token(self, token_id: str) -> bool:
        """Revoke a token; False if there is no such unrevoked token."""
        with self._tx() as conn:
            res = conn.execute(update(TOKENS).where(TOKENS.c.id == token_id, TOKENS.c.revoked_at.is_(None))
                               .values(revoked_at=utcnow()))
        return res.rowcount == 1

    def list_tokens(self) -> list[TokenInfo]:
        with self._tx(readonly=True) as conn:
            rows = conn.execute(select(TOKENS).order_by(TOKENS.c.created_at, TOKENS.c.id)).mappings().all()
        return [TokenInfo(**{k: r[k] for k in TokenInfo.__dataclass_fields__}) for r in rows]


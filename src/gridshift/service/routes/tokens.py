"""API tokens: created (the secret shown once), listed without secrets, revoked."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response

from gridshift.service.checks import check_text
from gridshift.service.deps import Operator, StoreDep, TokenId, threaded
from gridshift.service.schemas import API_PREFIX, TokenCreated, TokenIn, TokenOut, error_responses
from gridshift.service.store import NotFound

router = APIRouter(prefix=API_PREFIX, tags=["tokens"])


@router.post("/tokens", response_model=TokenCreated, status_code=201,
             summary="Create an API token (the secret is shown once)", responses=error_responses())
@threaded
def create_token(body: TokenIn, store: StoreDep, _: Operator) -> TokenCreated:
    check_text(body.model_dump())
    token_id, secret = store.create_token(body.name, body.role, body.tenant)
    info = next((t for t in store.list_tokens() if t.id == token_id), None)
    created = info.created_at if info is not None else datetime.now(UTC)
    return TokenCreated(id=token_id, name=body.name, role=body.role, tenant=body.tenant, created_at=created,
                        revoked_at=None, secret=secret)


@router.get("/tokens", response_model=list[TokenOut], summary="API tokens (without secrets)",
            responses=error_responses())
@threaded
def list_tokens(store: StoreDep, _: Operator) -> list[TokenOut]:
    return [TokenOut(id=t.id, name=t.name, role=t.role, tenant=t.tenant, created_at=t.created_at,
                     revoked_at=t.revoked_at) for t in store.list_tokens()]


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke an API token", responses=error_responses(404))
@threaded
def revoke_token(request: Request, token_id: TokenId, store: StoreDep, _: Operator) -> Response:
    if not store.revoke_token(token_id):
        raise NotFound(f"no active token '{token_id}'")
    request.app.state.auth.forget(token_id)
    return Response(status_code=204)

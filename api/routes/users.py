"""Administrators: the accounts and the whole audit log (accounts are managed with
``madoguchi user``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.auth import require_admin
from api.deps import KnowledgeDb
from api.schemas import AuditEventPublic, AuditPublic, UserPublic, UsersPublic
from knowledge.accounts import list_users
from knowledge.store import recent_audit

router = APIRouter(prefix="/api", tags=["admin"], dependencies=[Depends(require_admin)])


@router.get("/users", response_model=UsersPublic)
def users(db: KnowledgeDb) -> UsersPublic:
    return UsersPublic(data=[UserPublic(**vars(u)) for u in list_users(db)])


@router.get("/audit", response_model=AuditPublic)
def audit(db: KnowledgeDb, limit: Annotated[int, Query(ge=1, le=5000)] = 200) -> AuditPublic:
    """The newest ``limit`` audit events, newest first."""
    return AuditPublic(data=[AuditEventPublic(**event) for event in recent_audit(db, limit)])

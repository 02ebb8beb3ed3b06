"""Discount approvals: the policy (``policy.py``) decides the steps for exactly one quote
version; steps are decided in order by their approvers (or their delegates), never by the
requester; a rejection needs a reason and sends the quote back to draft."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.approvals import policy
from app.core import outbox
from app.core.auth import Principal
from app.core.concurrency import check_version
from app.core.errors import (
    Conflict,
    Forbidden,
    NotFound,
    RuleViolation,
    ValidationFailed,
    refused,
)
from app.core.ids import new_id, utcnow
from app.core.pagination import paginate, parse_sort
from app.core.repository import ensure_active_user, get_or_404
from app.models import (
    ApprovalDelegation,
    ApprovalPolicy,
    ApprovalRequest,
    ApprovalStep,
    Quote,
    QuoteVersion,
    User,
)
from app.quotes import service as quotes
from app.users.service import management_chain

DEFAULT_EXPIRY_DAYS = 7


# --- policies -----------------------------------------------------------------------------


async def active_policy(session: AsyncSession) -> tuple[list[dict[str, Any]], int]:
    row = await session.scalar(select(ApprovalPolicy).where(ApprovalPolicy.active))
    if row is None:
        return policy.DEFAULT_RULES, DEFAULT_EXPIRY_DAYS
    return row.rules, row.expires_after_days


def check_rules(rules: list[dict[str, Any]]) -> None:
    problems = policy.rule_problems(rules)
    if problems:
        raise ValidationFailed(
            f"Invalid policy: {problems[0]}",
            errors=[{"field": "body.rules", "code": "invalid_rule", "detail": p} for p in problems],
        )


async def list_policies(session: AsyncSession) -> list[ApprovalPolicy]:
    return list(await session.scalars(select(ApprovalPolicy).order_by(ApprovalPolicy.name)))


async def create_policy(
    session: AsyncSession,
    name: str,
    rules: list[dict[str, Any]],
    expires_after_days: int,
    active: bool,
) -> ApprovalPolicy:
    check_rules(rules)
    if await session.scalar(select(ApprovalPolicy.id).where(ApprovalPolicy.name == name)):
        raise Conflict(f"A policy named {name!r} exists", code="duplicate_policy")
    if active:
        await _deactivate_others(session, None)
    row = ApprovalPolicy(
        id=new_id(), name=name, rules=rules, expires_after_days=expires_after_days, active=active
    )
    session.add(row)
    await session.flush()
    return row


async def _deactivate_others(session: AsyncSession, keep: uuid.UUID | None) -> None:
    for other in await session.scalars(select(ApprovalPolicy).where(ApprovalPolicy.active)):
        if other.id != keep:
            other.active = False
    await session.flush()


async def update_policy(
    session: AsyncSession, policy_id: uuid.UUID, data: dict[str, Any], expected_version: int | None
) -> ApprovalPolicy:
    row = await session.scalar(
        select(ApprovalPolicy).where(ApprovalPolicy.id == policy_id).with_for_update()
    )
    if row is None:
        raise NotFound("approval policy")
    check_version("approval policy", row.version, expected_version)
    if data.get("rules") is not None:
        check_rules(data["rules"])
        row.rules = data["rules"]
    if data.get("expires_after_days") is not None:
        row.expires_after_days = data["expires_after_days"]
    name = data.get("name")
    if name is not None and name != row.name:
        if await session.scalar(select(ApprovalPolicy.id).where(ApprovalPolicy.name == name)):
            raise Conflict(f"A policy named {name!r} exists", code="duplicate_policy")
        row.name = name
    if data.get("active") is True:
        await _deactivate_others(session, row.id)
        row.active = True
    elif data.get("active") is False:
        row.active = False
    await session.flush()
    return row


# --- plans --------------------------------------------------------------------------------


async def _chain(session: AsyncSession, requester_id: uuid.UUID) -> list[policy.Manager]:
    chain_ids = (await management_chain(session, requester_id))[1:]
    users = {u.id: u for u in await session.scalars(select(User).where(User.id.in_(chain_ids)))}
    return [
        policy.Manager(str(i), users[i].approval_max_discount_pct)
        for i in chain_ids
        if i in users and users[i].is_active
    ]


async def _groups(session: AsyncSession) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for user in await session.scalars(
        select(User).where(User.is_active, User.approval_groups != [])
    ):
        for group in user.approval_groups:
            groups.setdefault(group, []).append(str(user.id))
    return groups


async def plan_for(
    session: AsyncSession, principal: Principal, quote: Quote, version: QuoteVersion
) -> policy.Plan:
    """The steps for a version, walking up from the quote's creator (its seller), so the
    preview is the same whoever looks at it."""
    requester = quote.created_by_id or principal.user_id
    if requester is None:
        raise Forbidden("Approvals are requested by a user", code="user_required")
    rules, _ = await active_policy(session)
    facts = policy.QuoteFacts(
        version.effective_discount_pct,
        version.net_total,
        version.payment_terms_days,
        version.term_months,
    )
    return policy.plan(
        rules,
        facts,
        manager_chain=await _chain(session, requester),
        groups=await _groups(session),
        requester_id=str(requester),
    )


async def preview(
    session: AsyncSession, principal: Principal, quote_id: uuid.UUID
) -> tuple[Quote, QuoteVersion, policy.Plan]:
    quote = await quotes.get_quote(session, quote_id)
    version, _ = await quotes.get_version(session, quote)
    return quote, version, await plan_for(session, principal, quote, version)


# --- submit, decide, recall ---------------------------------------------------------------


async def submit(
    session: AsyncSession, principal: Principal, quote_id: uuid.UUID, expected_version: int | None
) -> tuple[Quote, ApprovalRequest | None]:
    quote = await quotes.get_quote(session, quote_id, for_update=True)
    check_version("quote", quote.version, expected_version)
    if quote.status not in ("draft", "recalled"):
        raise refused("not_draft", f"a {quote.status} quote is not submitted")
    version, lines = await quotes.get_version(session, quote)
    if not lines:
        raise refused("empty_quote", "a quote needs at least one line item")
    plan = await plan_for(session, principal, quote, version)
    if not plan.resolvable:
        raise RuleViolation(
            "No one can approve this quote under the policy",
            code="no_approver",
            unmet=[
                {"code": "no_approver", "detail": s.label} for s in plan.steps if not s.resolvable
            ],
        )
    now = utcnow()
    version.submitted_at = now
    if not plan.needs_approval:
        version.approval, quote.status = "none_needed", "approved"
        await session.flush()
        outbox.emit(
            session,
            "quote.approved",
            resource_type="quote",
            resource_id=quote.id,
            data={**quotes.snapshot(quote, version), "approval": "none_needed"},
        )
        return quote, None
    _, expiry_days = await active_policy(session)
    request = ApprovalRequest(
        id=new_id(),
        quote_id=quote.id,
        quote_version=version.number,
        requested_by_id=principal.user_id,
        status="pending",
        current_step=1,
        expires_at=now + timedelta(days=expiry_days),
    )
    session.add(request)
    for step in plan.steps:
        session.add(
            ApprovalStep(
                id=new_id(),
                request_id=request.id,
                position=step.position,
                kind=step.kind,
                rule=step.rule,
                label=step.label,
                approver_ids=list(step.approver_ids),
                status="pending" if step.position == 1 else "waiting",
            )
        )
    quote.status = "pending_approval"
    await session.flush()
    outbox.emit(
        session,
        "quote.approval_requested",
        resource_type="quote",
        resource_id=quote.id,
        data={
            **quotes.snapshot(quote, version),
            "request_id": request.id,
            "steps": [
                {"position": s.position, "label": s.label, "approver_ids": list(s.approver_ids)}
                for s in plan.steps
            ],
        },
    )
    return quote, request


async def get_request(
    session: AsyncSession, request_id: uuid.UUID, *, for_update: bool = False
) -> ApprovalRequest:
    return await get_or_404(session, ApprovalRequest, request_id, "approval", for_update=for_update)


async def steps_of(
    session: AsyncSession, request_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[ApprovalStep]]:
    found: dict[uuid.UUID, list[ApprovalStep]] = {r: [] for r in request_ids}
    for step in await session.scalars(
        select(ApprovalStep)
        .where(ApprovalStep.request_id.in_(request_ids))
        .order_by(ApprovalStep.position)
    ):
        found[step.request_id].append(step)
    return found


async def _delegators(session: AsyncSession, user_id: uuid.UUID, at: datetime) -> set[str]:
    """Users who delegated their approvals to ``user_id`` for a period covering ``at``."""
    rows = await session.scalars(
        select(ApprovalDelegation.user_id).where(
            ApprovalDelegation.delegate_id == user_id,
            ApprovalDelegation.starts_at <= at,
            ApprovalDelegation.ends_at > at,
        )
    )
    return {str(u) for u in rows}


async def _lock_for_decision(
    session: AsyncSession, request_id: uuid.UUID
) -> tuple[ApprovalRequest, Quote]:
    """Lock the request's quote, then the request. Every change of an approval locks in
    this order (quote first, like an edit, a recall or expiry), so concurrent decisions,
    recalls and edits queue up instead of deadlocking."""
    request = await get_request(session, request_id)
    quote = await quotes.get_quote(session, request.quote_id, for_update=True)
    return await get_request(session, request_id, for_update=True), quote


async def _current_step(
    session: AsyncSession, principal: Principal, request: ApprovalRequest, quote: Quote
) -> tuple[ApprovalStep, uuid.UUID | None, QuoteVersion]:
    """The pending step this principal may decide, and on whose behalf."""
    if request.status != "pending":
        raise refused("not_pending", f"the approval is {request.status}")
    version, _ = await quotes.get_version(session, quote, request.quote_version)
    now = utcnow()
    if request.expires_at is not None and request.expires_at <= now:
        raise refused("approval_expired", "the approval request has expired")
    # The seller who made the quote never approves it (nor does whoever submitted a quote
    # without a known creator); a manager submitting on a rep's behalf may approve their step.
    requester = quote.created_by_id or request.requested_by_id
    if principal.user_id is None or principal.user_id == requester:
        raise Forbidden("The requester cannot approve their own quote", code="self_approval")
    step = next(
        s
        for s in (await steps_of(session, [request.id]))[request.id]
        if s.position == request.current_step
    )
    me = str(principal.user_id)
    if me in step.approver_ids:
        return step, None, version
    for delegator in sorted(await _delegators(session, principal.user_id, now)):
        if delegator in step.approver_ids and delegator != str(request.requested_by_id):
            return step, uuid.UUID(delegator), version
    raise Forbidden("You are not an approver of this step", code="not_an_approver")


async def approve(
    session: AsyncSession, principal: Principal, request_id: uuid.UUID, comment: str | None
) -> ApprovalRequest:
    request, quote = await _lock_for_decision(session, request_id)
    step, on_behalf_of, version = await _current_step(session, principal, request, quote)
    now = utcnow()
    step.status, step.decided_by_id, step.on_behalf_of_id = (
        "approved",
        principal.user_id,
        on_behalf_of,
    )
    step.decided_at, step.comment = now, comment
    following = await session.scalar(
        select(ApprovalStep).where(
            ApprovalStep.request_id == request.id, ApprovalStep.position == step.position + 1
        )
    )
    if following is not None:
        following.status = "pending"
        request.current_step = following.position
        event = "quote.approval_step_approved"
    else:
        request.status, request.decided_at = "approved", now
        version.approval, quote.status = "approved", "approved"
        event = "quote.approved"
    await session.flush()
    outbox.emit(
        session,
        event,
        resource_type="quote",
        resource_id=quote.id,
        data={
            **quotes.snapshot(quote, version),
            "request_id": request.id,
            "step": step.position,
            "decided_by": principal.user_id,
            "on_behalf_of": on_behalf_of,
            "comment": comment,
        },
    )
    return request


async def reject(
    session: AsyncSession,
    principal: Principal,
    request_id: uuid.UUID,
    reason_code: str,
    reason: str,
    comment: str | None,
) -> ApprovalRequest:
    request, quote = await _lock_for_decision(session, request_id)
    step, on_behalf_of, version = await _current_step(session, principal, request, quote)
    now = utcnow()
    step.status, step.decided_by_id, step.on_behalf_of_id = (
        "rejected",
        principal.user_id,
        on_behalf_of,
    )
    step.decided_at, step.reason_code, step.comment = now, reason_code, comment or reason
    for later in await session.scalars(
        select(ApprovalStep).where(
            ApprovalStep.request_id == request.id, ApprovalStep.status == "waiting"
        )
    ):
        later.status = "cancelled"
    request.status, request.decided_at = "rejected", now
    quote.status = "draft"
    await session.flush()
    outbox.emit(
        session,
        "quote.rejected",
        resource_type="quote",
        resource_id=quote.id,
        data={
            **quotes.snapshot(quote, version),
            "request_id": request.id,
            "reason_code": reason_code,
            "reason": reason,
            "decided_by": principal.user_id,
        },
    )
    return request


async def recall(
    session: AsyncSession, principal: Principal, quote_id: uuid.UUID, expected_version: int | None
) -> Quote:
    quote = await quotes.get_quote(session, quote_id, for_update=True)
    check_version("quote", quote.version, expected_version)
    if quote.status != "pending_approval":
        raise refused("not_pending", "only a quote pending approval is recalled")
    request = await session.scalar(
        select(ApprovalRequest).where(
            ApprovalRequest.quote_id == quote.id, ApprovalRequest.status == "pending"
        )
    )
    assert request is not None
    if request.requested_by_id != principal.user_id and not principal.is_admin:
        raise Forbidden("Only the requester (or an admin) recalls a request", code="not_requester")
    await quotes.close_pending_requests(session, quote, "recalled")
    quote.status = "recalled"
    version, _ = await quotes.get_version(session, quote)
    await session.flush()
    outbox.emit(
        session,
        "quote.recalled",
        resource_type="quote",
        resource_id=quote.id,
        data=quotes.snapshot(quote, version),
    )
    return quote


async def expire_requests(session: AsyncSession) -> int:
    """Pending requests past their expiry lapse; their quotes go back to draft (a job).

    Locks like every approval change, quote first; a quote someone is changing right now
    is left for the next run."""
    now = utcnow()
    due = ApprovalRequest.status == "pending", ApprovalRequest.expires_at <= now
    expired = 0
    for request_id, quote_id in (
        await session.execute(select(ApprovalRequest.id, ApprovalRequest.quote_id).where(*due))
    ).all():
        quote = await session.scalar(
            select(Quote)
            .where(Quote.id == quote_id)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
        if quote is None:
            continue
        request = await session.scalar(
            select(ApprovalRequest)
            .where(ApprovalRequest.id == request_id, *due)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if request is None:
            continue  # decided meanwhile
        await quotes.close_pending_requests(session, quote, "expired")
        quote.status = "draft"
        version, _ = await quotes.get_version(session, quote)
        outbox.emit(
            session,
            "quote.approval_expired",
            resource_type="quote",
            resource_id=quote.id,
            data={**quotes.snapshot(quote, version), "request_id": request.id},
        )
        expired += 1
    await session.flush()
    return expired


# --- listing ------------------------------------------------------------------------------


async def list_requests(
    session: AsyncSession,
    principal: Principal,
    *,
    assignee_me: bool,
    status: str | None,
    quote_id: uuid.UUID | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[ApprovalRequest], str | None]:
    stmt = select(ApprovalRequest)
    if status is not None:
        stmt = stmt.where(ApprovalRequest.status == status)
    if quote_id is not None:
        stmt = stmt.where(ApprovalRequest.quote_id == quote_id)
    if assignee_me:
        # The inbox: pending requests whose current step this user (or someone who
        # delegated to them) may decide.
        if principal.user_id is None:
            return [], None
        me = {str(principal.user_id)} | await _delegators(session, principal.user_id, utcnow())
        pending = select(ApprovalStep.request_id).where(
            ApprovalStep.status == "pending",
            or_(*(ApprovalStep.approver_ids.contains([uid]) for uid in sorted(me))),
        )
        stmt = stmt.where(
            ApprovalRequest.status == "pending",
            ApprovalRequest.id.in_(pending),
            ApprovalRequest.requested_by_id != principal.user_id,
        )
    keys = parse_sort(
        None,
        {"created_at": ApprovalRequest.created_at},
        default="-created_at",
        id_column=ApprovalRequest.id,
    )
    return await paginate(session, stmt, keys, limit=limit, cursor=cursor)


# --- delegations --------------------------------------------------------------------------


async def list_delegations(session: AsyncSession, principal: Principal) -> list[ApprovalDelegation]:
    stmt = select(ApprovalDelegation).order_by(ApprovalDelegation.starts_at)
    if not principal.is_admin:
        stmt = stmt.where(
            or_(
                ApprovalDelegation.user_id == principal.user_id,
                ApprovalDelegation.delegate_id == principal.user_id,
            )
        )
    return list(await session.scalars(stmt))


async def create_delegation(
    session: AsyncSession,
    principal: Principal,
    user_id: uuid.UUID | None,
    delegate_id: uuid.UUID,
    starts_at: datetime | None,
    ends_at: datetime,
) -> ApprovalDelegation:
    owner = user_id or principal.user_id
    if owner is None or (owner != principal.user_id and not principal.is_admin):
        raise Forbidden(
            "Users delegate their own approvals (admins anyone's)", code="role_not_allowed"
        )
    await ensure_active_user(session, "delegate_id", delegate_id)
    start = starts_at or utcnow()
    if delegate_id == owner or ends_at <= start:
        raise ValidationFailed(
            "A delegation goes to someone else, for a non-empty period",
            errors=[{"field": "body.ends_at", "code": "invalid_period"}],
        )
    delegation = ApprovalDelegation(
        id=new_id(), user_id=owner, delegate_id=delegate_id, starts_at=start, ends_at=ends_at
    )
    session.add(delegation)
    await session.flush()
    return delegation


async def delete_delegation(
    session: AsyncSession, principal: Principal, delegation_id: uuid.UUID
) -> None:
    stmt = select(ApprovalDelegation).where(ApprovalDelegation.id == delegation_id)
    if not principal.is_admin:
        stmt = stmt.where(ApprovalDelegation.user_id == principal.user_id)
    delegation = await session.scalar(stmt)
    if delegation is None:
        raise NotFound("delegation")
    await session.delete(delegation)
    await session.flush()

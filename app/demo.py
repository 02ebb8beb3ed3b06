"""Demo data: one realistic organization, created through the domain services."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accounts import service as accounts
from app.accounts.schemas import AccountCreate
from app.activities import service as activities
from app.activities.schemas import ActivityCreate
from app.approvals import service as approvals
from app.core.auth import Principal
from app.core.ids import utcnow
from app.core.tenancy import UNSCOPED, mark_system
from app.demo_history import SalesOrg, load_stages, seed_history
from app.forecasts import service as forecasts
from app.models import Account, Organization
from app.opportunities import service as opportunities
from app.opportunities.schemas import LostReasonIn, OpportunityCreate, StageMove, WonReasonIn
from app.partners import service as partners
from app.partners.schemas import PartnerCreate, RegistrationCreate
from app.pipelines import service as pipelines
from app.pipelines.schemas import PipelineCreate
from app.products import service as products
from app.products.schemas import EntryIn, PriceBookCreate, ProductCreate, TierIn
from app.quotes import service as quotes
from app.quotes.schemas import LineItemIn, QuoteCreate
from app.stakeholders import service as stakeholders
from app.stakeholders.schemas import ContactCreate, StakeholderCreate
from app.territories import service as territories_service
from app.territories.schemas import TerritoryCreate
from app.users import service as users
from app.users.schemas import TeamCreate, TeamUpdate, UserCreate, UserUpdate

INDUSTRIES = ("manufacturing", "textile", "construction", "saas", "logistics", "retail")
CITIES = (
    ("TR", "İstanbul"),
    ("TR", "Ankara"),
    ("TR", "İzmir"),
    ("TR", "Bursa"),
    ("DE", "München"),
    ("NL", "Rotterdam"),
)
COMPANY_WORDS = (
    "Anadolu",
    "Marmara",
    "Ege",
    "Boğaziçi",
    "Kuzey",
    "Toros",
    "Yıldız",
    "Kartal",
    "Çınar",
    "Doğu",
    "Akdeniz",
    "Kapadokya",
)
DEAL_TOPICS = (
    "ERP rollout",
    "new plant line",
    "annual licences",
    "logistics suite",
    "field service",
    "expansion to İzmir",
    "dealer portal",
)
COMPANY_KINDS = ("Tekstil", "Makina", "Yapı", "Yazılım", "Lojistik", "Gıda", "Otomotiv")


@dataclass(frozen=True, slots=True)
class DemoOrganization:
    organization_id: str
    admin_email: str
    api_key: str


async def database_is_empty(sessionmaker: async_sessionmaker[AsyncSession]) -> bool:
    async with sessionmaker() as session:
        mark_system(session)
        count = await session.scalar(
            select(func.count()).select_from(Organization).execution_options(**UNSCOPED)
        )
        return not count


async def seed_demo(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    seed: int = 7,
    scale: int = 1,
    history: bool = True,
) -> DemoOrganization:
    """The demo organization; without ``history`` only its present (users, accounts, deals,
    quotes, partners, territories) and not its two years of past deals, leads and KPIs."""
    rng = random.Random(seed)
    async with sessionmaker() as session, session.begin():
        org, admin, token = await users.create_organization(
            session,
            name="Demo Sanayi A.Ş.",
            admin_email="admin@demo.dealbase.dev",
            admin_name="Ayşe Admin",
        )
        vp = await users.create_user(
            session,
            UserCreate(
                email="vp@demo.dealbase.dev",
                name="Volkan VP",
                role="manager",
                approval_max_discount_pct=Decimal("30"),
            ),
        )
        rep_ids = []
        manager_ids = []
        manager_of: dict[uuid.UUID, uuid.UUID] = {}
        for index, (manager_name, region) in enumerate(
            (("Mehmet Müdür", "Marmara"), ("Zeynep Yönetici", "Anadolu"))
        ):
            manager = await users.create_user(
                session,
                UserCreate(
                    email=f"manager{index + 1}@demo.dealbase.dev",
                    name=manager_name,
                    role="manager",
                    manager_id=vp.id,
                    approval_max_discount_pct=Decimal("20"),
                ),
            )
            team = await users.create_team(
                session, TeamCreate(name=f"{region} Sales", manager_id=manager.id)
            )
            await users.update_user(session, manager.id, UserUpdate(team_id=team.id), None)
            for rep_index in range(2 * scale):
                rep = await users.create_user(
                    session,
                    UserCreate(
                        email=f"rep{index + 1}{rep_index + 1}@demo.dealbase.dev",
                        name=f"{region} Rep {rep_index + 1}",
                        role="rep",
                        manager_id=manager.id,
                        team_id=team.id,
                        approval_max_discount_pct=Decimal("10"),
                    ),
                )
                rep_ids.append(rep.id)
                manager_of[rep.id] = manager.id
            manager_ids.append(manager.id)
            await users.update_team(session, team.id, TeamUpdate(manager_id=manager.id), None)
        principal = Principal(
            organization_id=org.id,
            api_key_id=org.id,
            user_id=admin.id,
            partner_id=None,
            role="admin",
            scopes=frozenset({"*"}),
        )
        catalogue = await _demo_catalogue(session)
        parents: list[Account] = []
        for index in range(20):
            country, city = rng.choice(CITIES)
            name = f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_KINDS)} {index + 1} A.Ş."
            employees = rng.choice((12, 45, 80, 150, 420, 900, 2500, 8000))
            parent = rng.choice(parents) if parents and rng.random() < 0.25 else None
            account = await accounts.create_account(
                session,
                principal,
                AccountCreate(
                    name=name,
                    domain=f"demo{index + 1}.example.com.tr",
                    industry=rng.choice(INDUSTRIES),
                    employee_count=employees,
                    annual_revenue=Decimal(employees * rng.randint(80, 400) * 1000),
                    country=country,
                    city=city,
                    owner_id=rng.choice(rep_ids),
                    parent_account_id=parent.id if parent else None,
                    lifecycle="customer" if rng.random() < 0.3 else "prospect",
                ),
            )
            if parent is None and employees >= 900:
                parents.append(account)
            for _ in range(rng.choice((0, 1, 1, 2))):
                await _demo_deal(
                    session, principal, rng, account, owner=rng.choice(rep_ids), catalogue=catalogue
                )
        partner = await partners.create_partner(
            session,
            PartnerCreate(
                name="Ege Bilişim Çözümleri", tier="gold", commission_rate_pct=Decimal("12.50")
            ),
        )
        await partners.submit(
            session,
            principal,
            RegistrationCreate(
                partner_id=partner.id,
                company_name="Karadeniz Fındık A.Ş.",
                domain="karadenizfindik.example.com.tr",
                country="TR",
                contact_name="Selin Aydın",
                expected_amount=Decimal("420000"),
                expected_close_date=date(2027, 3, 31),
                products=["ERP"],
            ),
        )
        territories = [
            await territories_service.create_territory(
                session,
                TerritoryCreate(
                    name=name, priority=priority, countries=countries, member_ids=members
                ),
            )
            for name, priority, countries, members in (
                ("Türkiye", 10, ["TR"], rep_ids[: len(rep_ids) // 2]),
                ("Europe", 20, ["DE", "NL"], rep_ids[len(rep_ids) // 2 :]),
            )
        ]
        await pipelines.create_pipeline(
            session, PipelineCreate(name="Manufacturing projects"), template="manufacturing"
        )
        if history:
            await seed_history(
                session,
                SalesOrg(rep_ids, manager_ids, vp.id, manager_of, [t.id for t in territories]),
                await load_stages(session),
                rng,
                scale=scale,
            )
        await forecasts.take_pipeline_snapshot(session, utcnow().date())
        return DemoOrganization(str(org.id), admin.email, token)


async def _demo_catalogue(session: AsyncSession) -> list[uuid.UUID]:
    """Three products in a TRY price book: flat, volume and graduated pricing."""
    book = await products.create_price_book(
        session, PriceBookCreate(name="Standart TL", currency="TRY")
    )
    tiers = {
        "volume": [
            TierIn(up_to=Decimal(10), unit_price=Decimal(18000)),
            TierIn(up_to=None, unit_price=Decimal(15000)),
        ],
        "graduated": [
            TierIn(up_to=Decimal(5), unit_price=Decimal(5000)),
            TierIn(up_to=None, unit_price=Decimal(3500)),
        ],
    }
    ids = []
    for sku, name, model in (
        ("ERP-USER", "ERP kullanıcı lisansı", "flat"),
        ("LOOM-CTRL", "Dokuma tezgâhı kontrol ünitesi", "volume"),
        ("SUPPORT", "7/24 destek paketi", "graduated"),
    ):
        product = await products.create_product(session, ProductCreate(sku=sku, name=name))
        await products.upsert_entry(
            session,
            book.id,
            EntryIn(
                product_id=product.id,
                pricing_model=model,
                unit_price=Decimal(1200) if model == "flat" else None,
                tiers=tiers.get(model, []),
            ),
        )
        ids.append(product.id)
    return ids


FIRST_NAMES = ("Ayşe", "Mehmet", "Elif", "Can", "Zeynep", "Emre", "Selin", "Burak", "Deniz")
LAST_NAMES = ("Yılmaz", "Kaya", "Demir", "Şahin", "Çelik", "Öztürk", "Aydın", "Arslan")
COMMITTEE = (
    ("Genel Müdür", "c_level", ["decision_maker", "economic_buyer"]),
    ("Bilgi İşlem Müdürü", "director", ["champion", "technical_evaluator"]),
    ("Satın Alma Uzmanı", "manager", ["procurement"]),
)


async def _demo_committee(
    session: AsyncSession,
    principal: Principal,
    rng: random.Random,
    account: Account,
    deal_id: uuid.UUID,
) -> None:
    """Three contacts in a reporting line, on the deal's committee, with a few touches."""
    manager_id = None
    for title, seniority, roles in COMMITTEE:
        contact = await stakeholders.create_contact(
            session,
            principal.user_id,
            ContactCreate(
                account_id=account.id,
                first_name=rng.choice(FIRST_NAMES),
                last_name=rng.choice(LAST_NAMES),
                title=title,
                seniority=seniority,
                reports_to_id=manager_id,
            ),
        )
        manager_id = contact.id
        await stakeholders.add_stakeholder(
            session,
            deal_id,
            StakeholderCreate(
                contact_id=contact.id,
                roles=roles,
                influence=rng.randint(2, 5),
                stance=rng.choice(("supporter", "neutral", "unknown")),
            ),
        )
        for _ in range(rng.randint(0, 3)):
            await activities.create_activity(
                session,
                principal,
                ActivityCreate(
                    kind=rng.choice(("email", "call", "meeting", "demo")),
                    subject=rng.choice(
                        ("Discovery call", "Demo", "Pricing discussion", "Reference visit")
                    ),
                    occurred_at=utcnow() - timedelta(days=rng.randint(0, 80)),
                    duration_minutes=rng.choice((15, 30, 60, 90)),
                    opportunity_id=deal_id,
                    contact_ids=[contact.id],
                ),
            )


async def _demo_deal(
    session: AsyncSession,
    principal: Principal,
    rng: random.Random,
    account: Account,
    *,
    owner: uuid.UUID,
    catalogue: list[uuid.UUID],
) -> None:
    """A deal with its buying committee, somewhere along the default pipeline (as far as
    its rules allow without quotes), some of them won or lost."""
    amount = Decimal(rng.randrange(50, 2000) * 1000)
    view = await opportunities.create_opportunity(
        session,
        principal,
        OpportunityCreate(
            account_id=account.id,
            name=f"{account.name.split(' A.Ş.')[0]}: {rng.choice(DEAL_TOPICS)}",
            owner_id=owner,
            amount=amount,
            close_date=date(2026, 12, 31) - timedelta(days=rng.randrange(0, 300)),
            type="expansion" if account.lifecycle == "customer" else "new_business",
            source=rng.choice(("web_form", "event", "outbound", "referral", "partner")),
        ),
    )
    deal_id = view.opportunity.id
    await _demo_committee(session, principal, rng, account, deal_id)
    path = rng.choice((["needs_analysis"], ["needs_analysis", "proposal"], ["proposal"], []))
    for stage in path:
        await opportunities.move_stage(session, deal_id, StageMove(stage=stage), None)
    if path and path[-1] == "proposal":
        quote = await quotes.create_quote(
            session,
            principal,
            QuoteCreate(
                opportunity_id=deal_id,
                term_months=rng.choice((None, 12, 36)),
                annual_uplift_pct=Decimal(5),
                line_items=[
                    LineItemIn(
                        product_id=product,
                        quantity=Decimal(rng.randint(2, 20)),
                        discount_pct=Decimal(rng.choice((0, 5, 8))),
                    )
                    for product in rng.sample(catalogue, 2)
                ],
            ),
        )
        await approvals.submit(session, principal, quote.quote.id, None)
    outcome = rng.random()
    if outcome < 0.2:
        await opportunities.move_stage(
            session,
            deal_id,
            StageMove(stage="closed_won", won_reason=WonReasonIn(code="product_fit")),
            None,
        )
    elif outcome < 0.35:
        await opportunities.move_stage(
            session,
            deal_id,
            StageMove(
                stage="closed_lost",
                lost_reason=LostReasonIn(code="lost_to_competitor"),
                competitor=rng.choice(("Rakip Yazılım", "Global CRM Inc.")),
            ),
            None,
        )

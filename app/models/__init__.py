"""All tables, imported here so that Alembic and the tenancy listener see every model."""

from app.models.account import Account
from app.models.base import Base
from app.models.campaign import Campaign, CampaignMember
from app.models.forecast import ForecastAdjustment, ForecastSubmission, PipelineSnapshot
from app.models.lead import (
    ImportJob,
    Lead,
    LeadScoringRule,
    LeadStatusHistory,
    Territory,
    TerritoryAssignment,
)
from app.models.metrics import ExchangeRate, Quota, Spend
from app.models.nurture import NurtureEnrollment, NurtureProgram
from app.models.opportunity import (
    CustomFieldDefinition,
    Opportunity,
    OpportunitySplit,
    Pipeline,
    PipelineStage,
    StageEntryRollup,
    StageExitRollup,
    StageHistory,
    Task,
)
from app.models.organization import ApiKey, Organization, Team, User
from app.models.partner import (
    DealRegistration,
    Partner,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from app.models.platform import AuditLog, FieldHistory, IdempotencyRecord, OutboxEvent
from app.models.quote import (
    ApprovalDelegation,
    ApprovalPolicy,
    ApprovalRequest,
    ApprovalStep,
    Contract,
    ContractDocument,
    CrossSellRule,
    CrossSellTrigger,
    PriceBook,
    PriceBookEntry,
    Product,
    Quote,
    QuoteLineItem,
    QuoteVersion,
)
from app.models.signal import Signal
from app.models.stakeholder import (
    Activity,
    ActivityParticipant,
    Contact,
    ContactRelationship,
    OpportunityStakeholder,
)

__all__ = [
    "Account",
    "Activity",
    "ActivityParticipant",
    "ApiKey",
    "ApprovalDelegation",
    "ApprovalPolicy",
    "ApprovalRequest",
    "ApprovalStep",
    "AuditLog",
    "Base",
    "Campaign",
    "CampaignMember",
    "Contact",
    "ContactRelationship",
    "Contract",
    "ContractDocument",
    "CrossSellRule",
    "CrossSellTrigger",
    "CustomFieldDefinition",
    "DealRegistration",
    "ExchangeRate",
    "FieldHistory",
    "ForecastAdjustment",
    "ForecastSubmission",
    "IdempotencyRecord",
    "ImportJob",
    "Lead",
    "LeadScoringRule",
    "LeadStatusHistory",
    "NurtureEnrollment",
    "NurtureProgram",
    "Opportunity",
    "OpportunitySplit",
    "OpportunityStakeholder",
    "Organization",
    "OutboxEvent",
    "Partner",
    "Pipeline",
    "PipelineSnapshot",
    "PipelineStage",
    "PriceBook",
    "PriceBookEntry",
    "Product",
    "Quota",
    "Quote",
    "QuoteLineItem",
    "QuoteVersion",
    "Signal",
    "Spend",
    "StageEntryRollup",
    "StageExitRollup",
    "StageHistory",
    "Task",
    "Team",
    "Territory",
    "TerritoryAssignment",
    "User",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]

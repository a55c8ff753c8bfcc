"""Label audit: compare proposals with existing labels; flag and rank likely label noise."""

from .cases import CASE_COLUMNS
from .core import REPORT_COLUMNS, AuditConfig, AuditResult, audit, audit_steps
from .issues import HARD_ISSUES, ISSUE_TYPES
from .report import save_audit

__all__ = [
    "CASE_COLUMNS",
    "HARD_ISSUES",
    "ISSUE_TYPES",
    "REPORT_COLUMNS",
    "AuditConfig",
    "AuditResult",
    "audit",
    "audit_steps",
    "save_audit",
]

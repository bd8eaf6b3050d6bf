"""Tenant quotas, pure: who may use how much, what each tenant uses, and whether a gang fits.

No I/O and no clock. The controllers feed a `QuotaLedger` with the TenantQuotas and the pods bound
or assumed; the scheduler's Quota plugin asks it whether a gang may be admitted and the queue asks
for each tenant's weighted dominant share.
"""

from aisched.quota.ledger import Admission, QuotaLedger
from aisched.quota.tenants import GPU_MILLI, Tenant, gang_usage, quota_usage

__all__ = ["GPU_MILLI", "Admission", "QuotaLedger", "Tenant", "gang_usage", "quota_usage"]

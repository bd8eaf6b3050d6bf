"""Tenant quotas, pure: who may use how much, what each tenant uses, and whether a gang fits.

No I/O and no clock. The shell tells a `QuotaLedger` the TenantQuotas; the cache tells it every
pod bound or assumed (the ledger listens to the cache's deltas). The Quota plugin asks it whether a
gang may be admitted, the FairShare queue order asks for each tenant's weighted dominant share,
and preemption asks who borrows.
"""

from aisched.quota.ledger import Admission, QuotaLedger
from aisched.quota.tenants import GPU_MILLI, Tenant, gang_usage, quota_capacity, quota_usage

__all__ = ["GPU_MILLI", "Admission", "QuotaLedger", "Tenant", "gang_usage", "quota_capacity", "quota_usage"]

"""Asset checks: pandera schemas and data rules, and the deployment gates (all blocking)."""

from checks.data_quality import ALL_CHECKS as DATA_CHECKS
from checks.deployment import DEPLOYMENT_CHECKS
from checks.monitoring import MONITORING_CHECKS

ALL_CHECKS = [*DATA_CHECKS, *DEPLOYMENT_CHECKS, *MONITORING_CHECKS]

__all__ = ["ALL_CHECKS"]

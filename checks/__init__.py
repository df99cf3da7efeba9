"""Asset checks: pandera schemas and data rules, the deployment gates, monitoring signals, portfolio guards."""

from checks.data_quality import ALL_CHECKS as DATA_CHECKS
from checks.deployment import DEPLOYMENT_CHECKS
from checks.monitoring import MONITORING_CHECKS
from checks.portfolio import PORTFOLIO_CHECKS

ALL_CHECKS = [*DATA_CHECKS, *DEPLOYMENT_CHECKS, *MONITORING_CHECKS, *PORTFOLIO_CHECKS]

__all__ = ["ALL_CHECKS"]

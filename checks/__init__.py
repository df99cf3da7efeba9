"""Asset checks: pandera schemas and data rules, the deployment gates, monitoring signals, portfolio guards,
and the tick pipeline's schemas, honest-label, replay, gates and drift."""

from checks.data_quality import ALL_CHECKS as DATA_CHECKS
from checks.deployment import DEPLOYMENT_CHECKS
from checks.monitoring import MONITORING_CHECKS
from checks.portfolio import PORTFOLIO_CHECKS
from checks.ticks import TICK_CHECKS

ALL_CHECKS = [*DATA_CHECKS, *DEPLOYMENT_CHECKS, *MONITORING_CHECKS, *PORTFOLIO_CHECKS, *TICK_CHECKS]

__all__ = ["ALL_CHECKS"]

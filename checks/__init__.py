"""Asset checks: pandera schemas and data rules (blocking), collected in `ALL_CHECKS`."""

from checks.data_quality import ALL_CHECKS

__all__ = ["ALL_CHECKS"]

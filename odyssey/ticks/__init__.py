"""The tick-level volatility-spike pipeline (pure): the synthetic tick market and the NDJSON
message files (source), rolling features over messages and seconds (features), the honest
forward label, the chronological purged split and the label-dependence test (labels), and the
threshold baseline, logistic regression and XGBoost with their metrics (models)."""

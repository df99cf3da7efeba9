"""The README's main command, headless, on the quick profile: everything built, gates reported."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ODYSSEY_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dagster_home"),
           "ODYSSEY_PROFILE": "quick"}
    env.pop("ODYSSEY_STORAGE_URL", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "jobs.main", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)


@pytest.mark.slow
def test_main_command_builds_everything_and_reports_it(tmp_path):
    done = _run(tmp_path, "--workers", "2")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "Odyssey run summary" in out
    assert "assets      63/63 materializations" in out
    passed, total = map(int, re.search(r"checks\s+(\d+)/(\d+) passed", out).groups())
    # 14 data checks, 4 deployment gates and 2 monitoring checks for each of the 5 tickers, 2 portfolio checks
    assert passed == total == 14 + 5 * (4 + 2) + 2
    assert "FAILED" not in out
    home = tmp_path / "home"
    assert (home / "storage" / "tables" / "forecasts.parquet").exists()
    assert (home / "storage" / "reports" / "backtest_report.html").exists()
    assert (home / "storage" / "reports" / "recommendations.json").exists()
    assert (home / "mlflow" / "mlflow.db").exists()
    assert (tmp_path / "dagster_home" / "dagster.yaml").exists()
    # the UI reads the same instance: the runs are in it
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(tmp_path / "dagster_home")
    try:
        with dg.DagsterInstance.get() as instance:
            jobs = {r.job_name for r in instance.get_runs()}
    finally:
        os.environ.pop("DAGSTER_HOME")
    assert {"market_features", "forecasting", "batch_forecasts", "portfolio"} <= jobs

"""Benchmark the portfolio environment, PPO training and per-decision latency, each against a
reference measured in the same run; the last line is one JSON object.

    env:      PortfolioEnv.step on precomputed arrays vs a pandas environment that looks each
              day up in DataFrames (the seed notebook's style), the same steps on both; both
              give the same rewards.
    PPO:      the seed's hyperparameters on 4 vectorized envs, 1 torch thread, vs a single env
              with one torch thread per core, the same number of steps on both; the 500k-step
              time is extrapolated from the measured rate.
    decision: one observation -> action, ONNX Runtime vs the SB3 torch policy's predict().
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from odyssey.policy import export_onnx, onnx_decider, torch_decider, train_ppo  # noqa: E402
from odyssey.portfolio import (Constraints, EnvSettings, Panel, PolicyMarket, PortfolioEnv, SignalScale,  # noqa: E402
                               allocate, policy_market, project)
from odyssey.settings import PPOSettings  # noqa: E402


class PandasReferenceEnv:
    """Same dynamics as PortfolioEnv, written the way the seed wrote it: DataFrame lookups by date."""

    def __init__(self, signals: pd.DataFrame, context: pd.DataFrame, baseline: pd.DataFrame,
                 next_returns: pd.DataFrame, c: Constraints, s: EnvSettings):
        self.signals, self.context, self.baseline, self.next_returns = signals, context, baseline, next_returns
        self.c, self.s = c, s
        self.reset()

    def _obs(self) -> np.ndarray:
        date = self.signals.index[min(self.i, len(self.signals) - 1)]
        b = self.baseline.loc[date]
        position = ((self.weights - b) / (self.s.tilt * b)).where(b > 0, 0.0).clip(-3, 3)
        return np.r_[self.signals.loc[date].to_numpy(), position.to_numpy(), self.context.loc[date].to_numpy()]

    def reset(self):
        self.i = 0
        self.weights = pd.Series(project(self.baseline.iloc[0].to_numpy(), self.c), index=self.signals.columns)
        self.base_weights = self.weights.copy()
        return self._obs()

    def _trade(self, weights: pd.Series, target: pd.Series, r: pd.Series) -> tuple[float, pd.Series]:
        net = (target * r).sum() - (target - weights).abs().sum() * self.c.cost_rate
        return net, target * (1 + r) / (1 + net)

    def step(self, action):
        """(observation, reward, truncated): one episode runs through the whole frame."""
        date = self.signals.index[self.i]
        b, a = self.baseline.loc[date], pd.Series(np.clip(np.asarray(action, dtype=float), -1, 1), index=self.weights.index)
        aim = b * (1 + self.s.tilt * (a - (b * a).sum() / b.sum()))
        target = pd.Series(project((self.weights + self.s.trade_rate * (aim - self.weights)).to_numpy(), self.c),
                           index=self.weights.index)
        r = self.next_returns.loc[date]
        net, self.weights = self._trade(self.weights, target, r)
        base, self.base_weights = self._trade(self.base_weights, pd.Series(project(b.to_numpy(), self.c), index=b.index), r)
        excess = net - base
        reward = self.s.reward_scale * (excess - 0.5 * self.s.risk_aversion * excess**2)
        self.i += 1
        return self._obs(), reward, self.i >= len(self.signals)


def market(days: int, n: int, seed: int = 0) -> PolicyMarket:
    rng = np.random.default_rng(seed)
    panel = Panel(pd.bdate_range("2010-01-01", periods=days), tuple(f"T{i}" for i in range(n)),
                  rng.normal(0, 0.01, (days, n)), rng.normal(0.0003, 0.01, (days, n)))
    return policy_market(panel, SignalScale.fit(panel.forecasts), np.tile(allocate(np.ones(n), Constraints()),
                                                                           (days, 1)), horizon=5)


def env_rates(m: PolicyMarket, steps: int) -> tuple[float, float]:
    """Steps per second of both environments over the same `steps` (episodes through the whole
    panel, reset at its end), after checking they give the same rewards."""
    settings = EnvSettings(episode_length=None)
    actions = np.random.default_rng(1).uniform(-1, 1, (steps, m.signals.shape[1])).astype(np.float32)
    env = PortfolioEnv(m, settings=settings)
    env.reset(seed=0)
    rewards, started = [], time.perf_counter()
    for k in range(steps):
        _, reward, _, truncated, _ = env.step(actions[k])
        rewards.append(reward)
        if truncated:
            env.reset()
    fast = steps / (time.perf_counter() - started)
    frame = lambda values: pd.DataFrame(values, index=m.dates)  # noqa: E731
    ref = PandasReferenceEnv(frame(m.signals), frame(m.context), frame(m.baseline), frame(m.next_returns),
                             Constraints(), settings)
    ref.reset()
    ref_rewards, started = [], time.perf_counter()
    for k in range(steps):
        _, reward, truncated = ref.step(actions[k])
        ref_rewards.append(reward)
        if truncated:
            ref.reset()
    slow = steps / (time.perf_counter() - started)
    np.testing.assert_allclose(ref_rewards, rewards, rtol=1e-7, atol=1e-10)
    return fast, slow


def ppo_rate(m: PolicyMarket, settings: PPOSettings) -> float:
    trained = train_ppo(m, settings)
    return trained.timesteps / trained.seconds


def latency_ms(decide, observations: np.ndarray) -> float:
    for obs in observations[:50]:
        decide(obs)
    times = []
    for obs in observations:
        started = time.perf_counter()
        decide(obs)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=int, default=15)
    parser.add_argument("--days", type=int, default=1600, help="training days (the full profile has about 1,600)")
    parser.add_argument("--env-steps", type=int, default=20_000, help="environment steps timed, on both")
    parser.add_argument("--ppo-steps", type=int, default=65_536,
                        help="PPO steps timed, on both (whole 8,192-step rollouts)")
    args = parser.parse_args()

    m = market(args.days, args.assets)
    env_fast, env_ref = env_rates(m, steps=args.env_steps)

    seed = PPOSettings(total_timesteps=args.ppo_steps)
    ppo_fast = ppo_rate(m, seed)
    default_threads = torch.get_num_threads()
    reference = seed.model_copy(update={"n_envs": 1, "n_steps": 2048, "torch_threads": os.cpu_count() or 1,
                                        "total_timesteps": args.ppo_steps})
    ppo_ref = ppo_rate(m, reference)
    torch.set_num_threads(default_threads)

    model = train_ppo(m, seed.model_copy(update={"total_timesteps": 8192})).model
    space = model.observation_space
    space.seed(0)
    observations = np.stack([space.sample() for _ in range(2000)])
    torch_ms = latency_ms(torch_decider(model), observations)
    onnx_ms = latency_ms(onnx_decider(export_onnx(model)), observations)

    minutes = 500_000 / ppo_fast / 60
    print(f"{args.assets} assets, {args.days} training days, {args.env_steps:,} env steps and {args.ppo_steps:,} "
          f"PPO steps timed on both sides, {os.cpu_count()} cores")
    print(f"{'measurement':<62} {'value':>12}")
    print(f"{'env steps/s, PortfolioEnv (numpy)':<62} {env_fast:>12,.0f}")
    print(f"{'reference: pandas env, DataFrame lookups (steps/s)':<62} {env_ref:>12,.0f}")
    print(f"{'PPO steps/s, seed hyperparameters, 4 envs, 1 torch thread':<62} {ppo_fast:>12,.0f}")
    print(f"{'reference: 1 env, ' + str(os.cpu_count()) + ' torch threads (steps/s)':<62} {ppo_ref:>12,.0f}")
    print(f"{'500k PPO steps, extrapolated from the rate above (minutes)':<62} {minutes:>12.1f}")
    print(f"{'decision latency, torch predict() (ms)':<62} {torch_ms:>12.3f}")
    print(f"{'decision latency, ONNX Runtime (ms)':<62} {onnx_ms:>12.3f}")
    print(json.dumps({
        "bench": "portfolio",
        "env_steps_per_second": round(env_fast),
        "reference_env_steps_per_second": round(env_ref),
        "env_speedup": round(env_fast / env_ref, 1),
        "ppo_steps_per_second": round(ppo_fast),
        "reference_ppo_steps_per_second": round(ppo_ref),
        "ppo_speedup": round(ppo_fast / ppo_ref, 2),
        "ppo_500k_minutes": round(minutes, 2),
        "torch_decision_ms": round(torch_ms, 4),
        "onnx_decision_ms": round(onnx_ms, 4),
        "decision_speedup": round(torch_ms / onnx_ms, 1),
        "assets": args.assets,
    }))


if __name__ == "__main__":
    main()

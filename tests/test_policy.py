"""The PPO policy: determinism, exact resume after a crash, safe signed loading, ONNX agreement,
and honesty on signal-free and planted-signal markets."""

import io
import json
import tempfile
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback

from odyssey import backtest as bt
from odyssey.hashing import sha256_bytes
from odyssey.policy import (env_settings, export_onnx, latest_checkpoint, load_model, load_verified, model_bytes,
                            onnx_decider, torch_decider, train_ppo)
from odyssey.portfolio import Constraints, EnvSettings, Panel, PolicyMarket, SignalScale, policy_market, spaces
from odyssey.settings import PPOSettings
from odyssey.signing import SignatureError, sign
from tests.planted import planted_panel

KEY = b"test-key"
SMALL = PPOSettings(total_timesteps=2048, n_steps=128, n_envs=2, episode_length=64, checkpoint_every=512)


def _data(days=300, n=3, seed=0) -> tuple[PolicyMarket]:
    rng = np.random.default_rng(seed)
    return (PolicyMarket(pd.bdate_range("2015-01-01", periods=days), tuple("ABC"[:n]),
                         rng.standard_normal((days, n)).astype(np.float32),
                         rng.uniform(0, 1, (days, 2)).astype(np.float32), np.full((days, n), 0.2),
                         rng.normal(0.0003, 0.01, (days, n))),)


def _params(model) -> torch.Tensor:
    return torch.nn.utils.parameters_to_vector(model.policy.parameters()).detach()


class _CrashAt(BaseCallback):
    def __init__(self, steps: int):
        super().__init__()
        self.steps = steps

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.steps:
            raise RuntimeError("simulated crash")
        return True


@pytest.fixture(scope="module")
def uninterrupted():
    return train_ppo(*_data(), SMALL)


def test_same_settings_same_data_give_the_same_bytes(uninterrupted):
    again = train_ppo(*_data(), SMALL)
    assert model_bytes(again.model) == model_bytes(uninterrupted.model)
    other_seed = train_ppo(*_data(), SMALL.model_copy(update={"seed": 7}))
    assert not torch.equal(_params(other_seed.model), _params(uninterrupted.model))


def test_training_writes_nothing_to_the_temporary_folder(tmp_path, monkeypatch):
    """SB3 gives a model without its own logger a fresh tempdir/SB3-<time> folder on every learn()."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("SB3_LOGDIR", raising=False)
    train_ppo(*_data(), SMALL)
    assert list(tmp_path.glob("SB3-*")) == []


def test_a_crashed_run_resumes_from_its_last_checkpoint_and_ends_identical(tmp_path, uninterrupted):
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_ppo(*_data(), SMALL, checkpoint_dir=tmp_path, key=KEY, callbacks=[_CrashAt(1300)])
    assert sorted(p.name for p in tmp_path.glob("*.zip")) == ["ppo_000000000512.zip", "ppo_000000001024.zip"]
    resumed = train_ppo(*_data(), SMALL, checkpoint_dir=tmp_path, key=KEY)
    assert resumed.resumed_from == 1024 and resumed.timesteps == 2048
    assert len(resumed.rollout_rewards) == (2048 - 1024) // SMALL.rollout
    assert model_bytes(resumed.model) == model_bytes(uninterrupted.model)


def test_a_tampered_checkpoint_is_skipped(tmp_path):
    with pytest.raises(RuntimeError):
        train_ppo(*_data(), SMALL, checkpoint_dir=tmp_path, key=KEY, callbacks=[_CrashAt(1300)])
    newest = tmp_path / "ppo_000000001024.zip"
    newest.write_bytes(newest.read_bytes()[:-10] + b"0123456789")
    with pytest.warns(UserWarning, match="skipping checkpoint ppo_000000001024.zip"):
        found = latest_checkpoint(tmp_path, KEY)
    assert found[1] == 512


def test_loading_verifies_the_signature_and_never_unpickles(uninterrupted):
    data = model_bytes(uninterrupted.model)
    obs_space, act_space = spaces(3)
    model = load_verified(data, sha256_bytes(data), sign(data, KEY), KEY, obs_space,
                          act_space)
    assert torch.equal(_params(model), _params(uninterrupted.model))
    with pytest.raises(SignatureError, match="HMAC"):
        load_verified(data, sha256_bytes(data), sign(data, b"other"), KEY, obs_space,
                      act_space)
    # a zip carrying a pickled field nobody knows is refused before anything is deserialised
    source = zipfile.ZipFile(io.BytesIO(data))
    meta = json.loads(source.read("data"))
    meta["surprise"] = {":type:": "<class 'os.system'>", ":serialized:": "gASV"}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            target.writestr(name, json.dumps(meta) if name == "data" else source.read(name))
    with pytest.raises(SignatureError, match="'surprise' is pickled"):
        load_model(out.getvalue(), observation_space=obs_space, action_space=act_space)


def test_onnx_actions_match_torch_within_1e_5(uninterrupted):
    model = uninterrupted.model
    space = model.observation_space
    space.seed(0)
    obs = np.stack([space.sample() for _ in range(2000)])
    onnx = onnx_decider(export_onnx(model))
    torch_actions = torch_decider(model)(obs)
    assert np.max(np.abs(onnx(obs) - torch_actions)) <= 1e-5
    assert np.max(np.abs(onnx(obs[0]) - torch_actions[0])) <= 1e-5  # single decisions too


def test_settings_must_align_rollouts_with_episodes():
    with pytest.raises(ValueError, match="n_steps \\(100\\) must be a multiple of episode_length \\(64\\)"):
        PPOSettings(n_steps=100, episode_length=64)
    with pytest.raises(ValueError, match="n_steps \\* n_envs \\(384\\) must be a multiple of batch_size \\(256\\)"):
        PPOSettings(n_steps=192, n_envs=2, episode_length=64, batch_size=256)


def test_the_environment_takes_its_episode_length_reward_and_tilt_from_the_settings(quick_settings):
    assert env_settings(PPOSettings(n_steps=128, episode_length=64, risk_aversion=2.0, reward_scale=10.0, tilt=0.5,
                                    trade_rate=0.3)) == \
        EnvSettings(episode_length=64, risk_aversion=2.0, reward_scale=10.0, tilt=0.5, trade_rate=0.3)
    quick = quick_settings.portfolio.ppo  # the quick preset's shorter episodes and fewer steps
    assert (quick.total_timesteps, quick.n_steps, quick.episode_length, quick.checkpoint_every) == \
        (40960, 256, 64, 10240)
    assert env_settings(quick).episode_length == 64 and quick.checkpoint_rollouts == 10


# -- honesty ---------------------------------------------------------------------------------------
#
# A market of 5 assets with a common factor, 1,000 training and 750 test days. Signal-free: the
# forecasts are noise. Planted: each asset's next-day return has a persistent AR(1) component
# mu (daily s.d. about 0.3 %) and the forecast is 5 * mu plus noise. The PPO policy trains on the
# training days (30,720 steps) and tilts equal weight on the test days, both after costs; it is
# judged as policy_earns_its_place judges it (`judge_policy`): a paired moving-block bootstrap
# (20-day blocks, 2,000 draws) of the daily return difference, 90 % interval.
#
# Signal-free, on each of two markets, the policy must not be significantly worse than equal
# weight (it learns restraint: the interval's upper bound is >= 0) nor significantly better (no
# edge from noise: its lower bound is <= 0). Planted, it must be significantly better.

def _market(planted: bool, seed: int) -> Panel:
    return planted_panel(planted, seed, days=1750, n=5)


def _judged_against_equal_weight(panel: Panel) -> bt.PolicyVerdict:
    c = Constraints()
    scale = SignalScale.fit(panel.forecasts[:1000])
    market = policy_market(panel, scale, bt.equal_weight_targets(panel, c), horizon=5)
    train, test = market.between(end=panel.dates[999]), market.between(start=panel.dates[1000])
    settings = PPOSettings(total_timesteps=30_720, n_steps=256, episode_length=64, n_envs=4)
    policy = train_ppo(train, settings, c)
    policies, baselines = bt.walk_forward_runs([(test, torch_decider(policy.model))], c, settings.tilt,
                                               settings.trade_rate)
    return bt.judge_policy(bt.concatenate("policy", policies), bt.concatenate("baseline", baselines), margin=0.01)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_without_signal_the_policy_is_neither_significantly_worse_nor_better_than_equal_weight(seed):
    verdict = _judged_against_equal_weight(_market(planted=False, seed=seed))
    assert verdict.ci_high >= 0.0, verdict.reason
    assert verdict.ci_low <= 0.0, verdict.reason


@pytest.mark.slow
def test_with_a_planted_signal_the_policy_beats_equal_weight():
    verdict = _judged_against_equal_weight(_market(planted=True, seed=1))
    assert verdict.ci_low > 0.0 and verdict.passed, verdict.reason

"""A small recurrent variance forecaster trained with an asymmetric QLIKE loss.

Inputs are windows of `lookback` days of standardised log realised measure, returns and exogenous
features; the network outputs the log variance for the next day. With `har_skip` (the default) the output
is a linear log-HAR term (daily, weekly, monthly averages of the log measure) plus the recurrent term, so
the network learns a correction to log-HAR rather than the whole dynamics from a few hundred days; it
starts from the least-squares log-HAR fit (with the lognormal mean correction) and a zero recurrent term.
The loss is QLIKE, y/h − ln(y/h) − 1, weighted by (1 + asymmetry) on days where the forecast is below
the realised value, so under-forecasts cost more than over-forecasts. Training stops early on a
validation slice taken from the end of the training window; seeds are fixed so a fit is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from analytics.baselines import Forecast, InsufficientHistoryError

if TYPE_CHECKING:
    import torch

__all__ = ["NeuralConfig", "NeuralForecaster", "asymmetric_qlike"]

Cell = Literal["gru", "lstm"]
_FLOOR = 1e-8
HAR_INPUTS = 3
# Windows start once the monthly HAR average is defined.
_WARMUP = 22


@dataclass(frozen=True)
class NeuralConfig:
    """Hyper-parameters. The defaults are hand-set starting values; `forecast tune` searches them."""

    cell: Cell = "gru"
    hidden: int = 16
    lookback: int = 22
    lr: float = 0.01
    weight_decay: float = 1e-4
    asymmetry: float = 0.2
    epochs: int = 200
    patience: int = 20
    validation: float = 0.15
    seed: int = 0
    har_skip: bool = True


def asymmetric_qlike(log_h: torch.Tensor, y: torch.Tensor, asymmetry: float) -> torch.Tensor:
    """Mean QLIKE with under-forecasts (h < y) weighted by 1 + asymmetry."""
    import torch

    ratio = y * torch.exp(-log_h)
    loss = ratio - torch.log(ratio) - 1.0
    weight = 1.0 + asymmetry * (ratio > 1.0).to(loss.dtype)
    return torch.mean(weight * loss)


def _inputs(data: pd.DataFrame, features: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "log_target": np.log(data["target"].clip(lower=_FLOOR)),
            "ret": data["ret"],
            "abs_ret": data["ret"].abs(),
        },
        index=data.index,
    )
    for name in features:
        frame[name] = data[name].astype(float)
    return frame


def _har_inputs(data: pd.DataFrame) -> np.ndarray:
    level = np.log(data["target"].clip(lower=_FLOOR))
    design = pd.DataFrame({"d": level, "w": level.rolling(5).mean(), "m": level.rolling(22).mean()})
    return np.asarray(design.bfill().to_numpy())


def _windows(values: np.ndarray, ends: np.ndarray, lookback: int) -> np.ndarray:
    """windows[i] = values[ends[i] − lookback + 1 … ends[i]] (inclusive)."""
    offsets = np.arange(-lookback + 1, 1)
    return values[ends[:, None] + offsets[None, :]]


def _network(config: NeuralConfig, n_inputs: int) -> Any:
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            cell = nn.GRU if config.cell == "gru" else nn.LSTM
            self.rnn = cell(n_inputs, config.hidden, batch_first=True)
            self.head = nn.Linear(config.hidden, 1)
            self.har = nn.Linear(HAR_INPUTS, 1) if config.har_skip else None

        def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
            out, _ = self.rnn(x)
            head: torch.Tensor = self.head(out[:, -1, :])
            if self.har is not None:
                head = head + self.har(z)
            return head.squeeze(-1)

    return Net()


def _start_at_log_har(net: Any, z: np.ndarray, log_y: np.ndarray) -> None:
    import torch

    design = np.column_stack([np.ones(len(z)), z])
    beta, *_ = np.linalg.lstsq(design, log_y, rcond=None)
    resid_var = float(np.var(log_y - design @ beta))
    with torch.no_grad():
        net.har.weight.copy_(torch.tensor(beta[None, 1:], dtype=torch.float32))
        net.har.bias.fill_(float(beta[0]) + 0.5 * resid_var)
        net.head.weight.zero_()
        net.head.bias.zero_()


def _first_end(config: NeuralConfig) -> int:
    return max(config.lookback, _WARMUP) - 1


@dataclass(frozen=True)
class _Scaler:
    mean: np.ndarray
    std: np.ndarray

    def __call__(self, values: np.ndarray) -> np.ndarray:
        out: np.ndarray = (values - self.mean) / self.std
        return out


def _train(net: Any, x: np.ndarray, z: np.ndarray, y: np.ndarray, offset: float, config: NeuralConfig) -> int:
    import torch

    n_val = max(int(len(x) * config.validation), 20)
    xt = torch.tensor(x, dtype=torch.float32)
    zt = torch.tensor(z, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.float32)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    best, best_state, waited, best_epoch = float("inf"), None, 0, 0
    for epoch in range(config.epochs):
        net.train()
        opt.zero_grad()
        loss = asymmetric_qlike(net(xt[:-n_val], zt[:-n_val]) + offset, yt[:-n_val], config.asymmetry)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        net.eval()
        with torch.no_grad():
            fitted = net(xt[-n_val:], zt[-n_val:]) + offset
            val = float(asymmetric_qlike(fitted, yt[-n_val:], config.asymmetry))
        if val < best - 1e-6:
            best, waited, best_epoch = val, 0, epoch
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
        else:
            waited += 1
            if waited >= config.patience:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    return best_epoch


@dataclass(frozen=True)
class _FittedNeural:
    net: Any
    scaler: _Scaler
    har_scaler: _Scaler
    offset: float
    config: NeuralConfig
    features: tuple[str, ...]

    def _predict(self, data: pd.DataFrame, ends: np.ndarray) -> np.ndarray:
        import torch

        values = self.scaler(_inputs(data, self.features).to_numpy())
        har = self.har_scaler(_har_inputs(data))[ends]
        with torch.no_grad():
            x = torch.tensor(_windows(values, ends, self.config.lookback), dtype=torch.float32)
            out = self.net(x, torch.tensor(har, dtype=torch.float32)).numpy() + self.offset
        return np.asarray(np.exp(out))

    def forecast(self, data: pd.DataFrame, days: pd.DatetimeIndex) -> Forecast:
        pos = np.asarray(data.index.get_indexer(days))
        needed = _first_end(self.config) + 1
        if (pos < needed).any():
            raise ValueError(f"every forecast day needs {needed} days of data before it")
        return Forecast(pd.Series(self._predict(data, pos - 1), index=days))

    def path(self, data: pd.DataFrame, horizon: int) -> np.ndarray:
        # A one-day model: beyond a day, hold the forecast flat.
        return np.full(horizon, self._predict(data, np.array([len(data) - 1]))[0])


@dataclass(frozen=True)
class NeuralForecaster:
    """GRU/LSTM variance forecaster; `features` names extra columns of the data to feed it."""

    config: NeuralConfig = field(default_factory=NeuralConfig)
    features: tuple[str, ...] = ()
    min_history: int = 250

    @property
    def name(self) -> str:
        return f"{self.config.cell}-x" if self.features else self.config.cell

    def fit(self, history: pd.DataFrame) -> _FittedNeural:
        import torch

        if len(history) < self.min_history:
            raise InsufficientHistoryError(
                f"{self.name} needs at least {self.min_history} days of history, got {len(history)}"
            )
        torch.manual_seed(self.config.seed)
        raw = _inputs(history, self.features).to_numpy()
        scaler = _Scaler(raw.mean(axis=0), np.where(raw.std(axis=0) > 0, raw.std(axis=0), 1.0))
        har = _har_inputs(history)
        har_scaler = _Scaler(har.mean(axis=0), np.where(har.std(axis=0) > 0, har.std(axis=0), 1.0))
        ends = np.arange(_first_end(self.config), len(history) - 1)
        x = _windows(scaler(raw), ends, self.config.lookback)
        y = history["target"].clip(lower=_FLOOR).to_numpy()[ends + 1]
        offset = float(np.log(y.mean()))
        net = _network(self.config, raw.shape[1])
        z = har_scaler(har)[ends]
        if self.config.har_skip:
            _start_at_log_har(net, z, np.log(y) - offset)
        _train(net, x, z, y, offset, self.config)
        net.eval()
        return _FittedNeural(net, scaler, har_scaler, offset, self.config, self.features)

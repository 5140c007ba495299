"""Project code that the example pipeline calls through the ``python`` component type.

``pipeline.yaml`` refers to it as ``functions.py:fetch_fx_rates``: a path relative to the
pipeline's base directory, so this file needs no installing.
"""

from __future__ import annotations

import pandas as pd

from etl_meta.components import ComponentContext, ComponentResult, sandbox_of

#: What the simulated rates service answers: units of each currency for one euro.
_EUR_RATES = {"USD": 1.0873, "GBP": 0.8542, "CHF": 0.9391, "SEK": 11.204, "JPY": 162.47}


def fetch_fx_rates(
    context: ComponentContext, currencies: list[str], path: str = "output/fx_rates.csv"
) -> ComponentResult:
    """Fetch today's EUR exchange rates for ``currencies`` and save them as CSV at ``path``.

    The first attempt of every run fails the way a flaky HTTP service does, so the example shows
    a step that fails once and succeeds when the orchestrator retries it.
    """
    if context.attempt == 1:
        raise ConnectionError(
            "simulated transient outage of the FX rates service (the next attempt succeeds)"
        )
    unknown = sorted(set(currencies) - set(_EUR_RATES))
    if unknown:
        raise ValueError(f"the rates service has no rate for {', '.join(unknown)}")
    rates = pd.DataFrame(
        {
            "base": "EUR",
            "currency": currencies,
            "rate": [_EUR_RATES[c] for c in currencies],
        }
    )
    # `path` comes from the definitions file: write only where the operator's sandbox allows.
    target = sandbox_of(context).file(path, field="configuration.kwargs.path", write=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    rates.to_csv(target, index=False)
    context.log.info("saved %d exchange rates to %s", len(rates), path)
    return ComponentResult(
        value=rates, metrics={"rows": len(rates)}, metadata={"path": str(target)}
    )

"""The red-team benchmark: real attacks against victims trained at bench time.

The contract (victims, queries, attack runs) is in :mod:`querywarden.bench.scenario`.
"""

from querywarden.bench.scenario import (
    AttackRun,
    AttackSpec,
    BenchError,
    Query,
    QueryBudgetExceeded,
    Scale,
    Victim,
    attack_names,
    attack_spec,
    run_attack,
)

__all__ = [
    "AttackRun",
    "AttackSpec",
    "BenchError",
    "Query",
    "QueryBudgetExceeded",
    "Scale",
    "Victim",
    "attack_names",
    "attack_spec",
    "run_attack",
]

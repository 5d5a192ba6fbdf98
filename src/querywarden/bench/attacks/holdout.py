"""The held-out runs: attacks against victims nothing was tuned on, and attacks with other settings.

Detectors are judged on models, attackers and customers nobody on the project has seen. The
``holdout`` profile approximates that in two ways, with the benchmark's own attack code
(parameters, never forks):

- every attack that applies to a held-out victim (``synth64-svc``, ``wine-gb``), at its
  usual settings: FEE needs a ReLU network returning logits and the attribute attacks a
  sensitive input, which these victims do not have;
- at least one other setting per attack family on the usual victims, chosen as a real
  attacker would change them: fewer or cheaper HopSkipJump steps, larger Boundary steps, a
  smaller Papernot lambda, Tramèr with the minimum number of queries or with every feature
  drawn from natural values, MI-Face with a finer step, another out-of-distribution pool,
  a cheaper label-only probe, a Fredrikson sweep sent in two passes, larger query batches.

A name is ``attack@victim`` for the usual settings on a held-out victim (the run keeps the
attack's name) and ``attack-setting`` for another setting (the run takes that name).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from querywarden.bench.attacks import attribute, evasion, extraction, inversion, membership, papernot, tramer
from querywarden.bench.scenario import AttackRun, AttackRunner, AttackSpec, Family, Scale, Victim
from querywarden.core.atlas import ADVERSARIAL, EXTRACTION, INVERSION, MEMBERSHIP

Source = Literal["art", "own"]


def _with(runner: Any, name: str | None, **settings: Any) -> AttackRunner:
    """``runner`` with keyword ``settings``; the run is renamed to ``name`` when one is given."""

    def run(victim: Victim, seed: int, scale: Scale) -> AttackRun:
        out: AttackRun = runner(victim, seed, scale, **settings)
        return dataclasses.replace(out, name=name) if name else out

    return run


def _spec(
    attack: str, technique: str, family: Family, victim: str, runner: Any, source: Source, **settings: Any
) -> AttackSpec:
    return AttackSpec(
        f"{attack}@{victim}",
        technique,
        family,
        victim,
        _with(runner, None, **settings),
        source,
        "held-out victim",
    )


def _setting(
    name: str, technique: str, family: Family, victim: str, runner: Any, source: Source, what: str, **settings: Any
) -> AttackSpec:
    return AttackSpec(name, technique, family, victim, _with(runner, name, **settings), source, what)


_VICTIMS = (
    _spec("copycat", EXTRACTION, "natural", "synth64-svc", extraction.copycat, "art"),
    _spec("knockoff-natural", EXTRACTION, "natural", "synth64-svc", extraction.knockoff_natural, "art"),
    _spec("knockoff-ood", EXTRACTION, "ood", "synth64-svc", extraction.knockoff_ood, "art", pool="marginals"),
    _spec("tramer", EXTRACTION, "synthetic", "synth64-svc", tramer.tramer, "own"),
    _spec("papernot", EXTRACTION, "synthetic", "synth64-svc", papernot.papernot, "own"),
    _spec("hopskipjump", ADVERSARIAL, "iterative", "synth64-svc", evasion.hopskipjump, "art"),
    _spec("boundary", ADVERSARIAL, "iterative", "synth64-svc", evasion.boundary, "art"),
    _spec("miface", INVERSION, "iterative", "synth64-svc", inversion.miface, "art"),
    _spec("mia-blackbox", MEMBERSHIP, "membership", "synth64-svc", membership.mia_blackbox, "art"),
    _spec("mia-labelonly", MEMBERSHIP, "iterative", "synth64-svc", membership.mia_labelonly, "art"),
    _spec("tramer", EXTRACTION, "synthetic", "wine-gb", tramer.tramer, "own"),
    _spec("papernot", EXTRACTION, "synthetic", "wine-gb", papernot.papernot, "own", seed_set=10),
    _spec("hopskipjump", ADVERSARIAL, "iterative", "wine-gb", evasion.hopskipjump, "art"),
    _spec("boundary", ADVERSARIAL, "iterative", "wine-gb", evasion.boundary, "art"),
    _spec("miface", INVERSION, "iterative", "wine-gb", inversion.miface, "art"),
    _spec("mia-labelonly", MEMBERSHIP, "iterative", "wine-gb", membership.mia_labelonly, "art", candidates=15),
)

_SETTINGS = (
    _setting(
        "knockoff-natural-b100",
        EXTRACTION,
        "natural",
        "digits",
        extraction.knockoff_natural,
        "art",
        "batches of 100",
        batch_size=100,
    ),
    _setting(
        "knockoff-ood-invert",
        EXTRACTION,
        "ood",
        "digits",
        extraction.knockoff_ood,
        "art",
        "negative digits, batches of 50",
        pool="invert",
        batch_size=50,
    ),
    _setting(
        "papernot-lambda02",
        EXTRACTION,
        "synthetic",
        "digits",
        papernot.papernot,
        "own",
        "lambda 0.02, 10 seeds, 5 rounds",
        step=0.02,
        seed_set=10,
        rounds=5,
    ),
    _setting(
        "tramer-exact",
        EXTRACTION,
        "synthetic",
        "breast-cancer",
        tramer.tramer,
        "own",
        "d + 1 queries, one row per request",
        per_unknown=1,
        batch=1,
    ),
    _setting(
        "tramer-marginals",
        EXTRACTION,
        "synthetic",
        "breast-cancer",
        tramer.tramer,
        "own",
        "every feature drawn from natural values",
        distribution="marginals",
    ),
    _setting(
        "fee-fine",
        EXTRACTION,
        "synthetic",
        "breast-cancer-relu",
        extraction.fee,
        "art",
        "delta_0 0.01, fraction_true 0.5",
        delta_0=0.01,
        fraction_true=0.5,
    ),
    _setting(
        "hopskipjump-lean",
        ADVERSARIAL,
        "iterative",
        "digits",
        evasion.hopskipjump,
        "art",
        "4 iterations, 100 evaluations, init_eval 10, batches of 16",
        max_iter=4,
        max_eval=100,
        init_eval=10,
        batch_size=16,
    ),
    _setting(
        "boundary-wide",
        ADVERSARIAL,
        "iterative",
        "digits",
        evasion.boundary,
        "art",
        "steps 0.05, 5 trials of 5",
        max_iter=60,
        num_trial=5,
        sample_size=5,
        delta=0.05,
        epsilon=0.05,
    ),
    _setting(
        "miface-fine",
        INVERSION,
        "iterative",
        "digits",
        inversion.miface,
        "art",
        "learning rate 0.01, h 0.01",
        learning_rate=0.01,
        difference=0.01,
    ),
    _setting(
        "mia-blackbox-gb",
        MEMBERSHIP,
        "membership",
        "adult-overfit",
        membership.mia_blackbox,
        "art",
        "gradient-boosting attack model, 50 known",
        attack_model="gb",
        known=50,
    ),
    _setting(
        "mia-labelonly-lean",
        MEMBERSHIP,
        "iterative",
        "adult-overfit",
        membership.mia_labelonly,
        "art",
        "HopSkipJump 2 iterations, 50 evaluations, init_eval 5",
        max_iter=2,
        max_eval=50,
        init_eval=5,
    ),
    _setting(
        "fredrikson-passes",
        INVERSION,
        "attribute",
        "adult-overfit",
        attribute.fredrikson,
        "own",
        "two passes, batches of 20",
        order="passes",
        batch=20,
    ),
)

HOLDOUT: dict[str, AttackSpec] = {spec.name: spec for spec in (*_VICTIMS, *_SETTINGS)}

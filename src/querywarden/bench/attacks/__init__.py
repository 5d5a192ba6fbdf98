"""The attacks the benchmark runs, each bound to the victim it is meant for.

``REGISTRY`` maps an attack name to its :class:`~querywarden.bench.scenario.AttackSpec`;
use :func:`querywarden.bench.scenario.run_attack` rather than the modules directly. ART
attacks live with their family (extraction, evasion, inversion, membership, attribute);
our own implementations are :mod:`.tramer`, :mod:`.papernot` and the Fredrikson sweep in
:mod:`.attribute`.
"""

from __future__ import annotations

from querywarden.bench.attacks import attribute, evasion, extraction, inversion, membership, papernot, tramer
from querywarden.bench.scenario import AttackSpec
from querywarden.core.atlas import ADVERSARIAL, EXTRACTION, INVERSION, MEMBERSHIP

_SPECS = (
    AttackSpec("copycat", EXTRACTION, "natural", "digits", extraction.copycat, "art", "CopycatCNN, natural records"),
    AttackSpec(
        "knockoff-natural", EXTRACTION, "natural", "digits", extraction.knockoff_natural, "art", "KnockoffNets, random"
    ),
    AttackSpec(
        "knockoff-ood", EXTRACTION, "ood", "digits", extraction.knockoff_ood, "art", "KnockoffNets, mirrored digits"
    ),
    AttackSpec("fee", EXTRACTION, "synthetic", "breast-cancer-relu", extraction.fee, "art", "functionally equivalent"),
    AttackSpec("tramer", EXTRACTION, "synthetic", "breast-cancer", tramer.tramer, "own", "equation solving"),
    AttackSpec("papernot", EXTRACTION, "synthetic", "digits", papernot.papernot, "own", "Jacobian augmentation"),
    AttackSpec("hopskipjump", ADVERSARIAL, "iterative", "digits", evasion.hopskipjump, "art", "HopSkipJump, L2"),
    AttackSpec("boundary", ADVERSARIAL, "iterative", "digits", evasion.boundary, "art", "BoundaryAttack"),
    AttackSpec("miface", INVERSION, "iterative", "digits", inversion.miface, "art", "MIFace, finite differences"),
    AttackSpec(
        "mia-blackbox", MEMBERSHIP, "membership", "adult-overfit", membership.mia_blackbox, "art", "black-box MIA, rf"
    ),
    AttackSpec(
        "mia-labelonly", MEMBERSHIP, "iterative", "adult-overfit", membership.mia_labelonly, "art", "label-only MIA"
    ),
    AttackSpec(
        "attribute-blackbox", INVERSION, "attribute", "adult", attribute.attribute_blackbox, "art", "attribute of sex"
    ),
    AttackSpec("fredrikson", INVERSION, "attribute", "adult-overfit", attribute.fredrikson, "own", "attribute sweep"),
)

REGISTRY: dict[str, AttackSpec] = {spec.name: spec for spec in _SPECS}

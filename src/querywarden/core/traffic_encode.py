"""Writing traffic: one ``Interaction`` out as one traffic record (the inverse of parsing).

Kept apart from the parser in ``traffic``: writing needs none of the wire structs, the
profile checks or the rejection wording, and the gateway and the benchmark write traffic
without ever reading it. ``traffic`` re-exports both names, so older imports keep working.
"""

from __future__ import annotations

from typing import Any

import msgspec

from querywarden.core.records import Interaction


def to_record(interaction: Interaction) -> dict[str, Any]:
    """The traffic record of one interaction, ready for ``msgspec.json.encode``.

    ``parse(encode(to_record(i)))`` gives back an equal interaction (its ``source`` aside).
    Time is written as epoch seconds so it round-trips exactly.
    """
    rec: dict[str, Any] = {"id": interaction.id, "ts": interaction.ts, "principal": interaction.principal}
    rec["model"] = interaction.model
    client = interaction.client
    if client.ip is not None or client.user_agent is not None:
        rec["client"] = {k: v for k, v in (("ip", client.ip), ("user_agent", client.user_agent)) if v is not None}
    if interaction.features is not None:
        rec["input"] = {"features": interaction.features.tolist()}
    elif interaction.messages is not None:
        rec["input"] = {"messages": [dict(m) for m in interaction.messages]}
    else:
        rec["input"] = {"prompt": interaction.prompt or ""}
    out = interaction.output
    if out is not None:
        o: dict[str, Any] = {}
        if out.probabilities is not None:
            o["probabilities"] = out.probabilities.tolist()
        if out.scores is not None:
            o["scores"] = out.scores.tolist()
        if out.label is not None:
            o["label"] = out.label
        if out.text is not None:
            o["text"] = out.text
        if out.logprobs is not None:
            o["logprobs"] = out.logprobs
        rec["output"] = o
    if interaction.params:
        rec["params"] = dict(interaction.params)
    return rec


_ENCODER = msgspec.json.Encoder()


def encode(interaction: Interaction) -> bytes:
    """One traffic line (without the newline) for ``interaction``."""
    return _ENCODER.encode(to_record(interaction))


__all__ = ["encode", "to_record"]

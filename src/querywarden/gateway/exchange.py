"""One captured request/response pair, turned into interactions by the engine worker.

The request path only records what it already had in hand (the parsed request, the raw
response bytes or chunks). Decoding the response and building numpy-backed interactions
happens in ``interactions()``, which the engine worker calls off the critical path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from querywarden.core.records import Client, Interaction, Output
from querywarden.gateway.adapters import Adapter, ParsedRequest

_DECODER = msgspec.json.Decoder()


@dataclass(slots=True)
class Exchange:
    id: str
    ts: float
    principal: str
    model: str
    client: Client
    adapter: Adapter
    request: ParsedRequest
    response: Any = None
    """The upstream's decoded JSON body (as the model returned it, before hardening)."""
    response_raw: bytes | None = None
    """The upstream's raw body when it was not decoded on the request path."""
    stream: list[bytes] | None = None
    """Raw SSE chunks of a streamed answer."""
    params: dict[str, Any] = field(default_factory=dict)

    def interactions(self) -> list[Interaction]:
        """One interaction per instance; a batch shares the request id with a ``#i`` suffix."""
        instances = self.request.instances
        n = len(instances)
        outputs = self._outputs(n)
        params = {**self.request.params, **self.params}
        result = []
        for i, inst in enumerate(instances):
            result.append(
                Interaction(
                    id=self.id if n == 1 else f"{self.id}#{i}",
                    ts=self.ts,
                    principal=self.principal,
                    model=self.model,
                    client=self.client,
                    features=inst.features,
                    prompt=inst.prompt,
                    messages=inst.messages,
                    output=outputs[i],
                    params=params,
                    source="gateway",
                )
            )
        return result

    def _outputs(self, n: int) -> list[Output | None]:
        if self.stream is not None:
            return [self.adapter.stream_output(self.stream)] + [None] * (n - 1)
        body = self.response
        if body is None and self.response_raw:
            try:
                body = _DECODER.decode(self.response_raw)
            except msgspec.DecodeError:
                body = None
        if body is None:
            return [None] * n
        return self.adapter.outputs(body, n)

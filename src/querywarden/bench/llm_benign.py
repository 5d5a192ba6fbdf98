"""Benign chat traffic for the LLM benchmark: the customers and apps a bank's assistant serves.

A false alarm on an LLM endpoint usually comes from traffic that looks like an attack
from far away, so the workloads are chosen to sit close to the attacks:

- ``faq``: customers asking everyday questions (lost card, limits, fees, ...) in their own
  words: varied greetings, casing, lengths, sometimes a multi-turn history, often
  streamed. Many customers ask the same few questions, so prompts repeat across
  principals, as they do in production;
- ``account``: customers asking about their own transactions and payout details, with
  names, amounts and merchants in the prompt (PII in, as real users send it);
- ``retry``: a flaky mobile connection resending the identical request within seconds;
- ``agent_desk``: a support-desk integration drafting replies for many different
  customers through ``/v1/completions`` with one template: templated prompts with names
  in the slots, the benign twin of templated enumeration;
- ``confidence_app``: an internal app that asks for ``logprobs`` with ``top_logprobs: 1``
  to gate low-confidence answers: legitimate logprob use.

Every request is an OpenAI-style body, so the benchmark answers it with the real
assistant and records it the way the gateway does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Literal

from querywarden.llm.corpus import TOPICS, Corpus

DAY = 86_400.0
Endpoint = Literal["chat", "completions"]

UA_APP = ("NorthgateApp/5.2 (iOS 18.1)", "NorthgateApp/5.2 (Android 15)", "NorthgateWeb/2026.11")
UA_SERVER = ("python-httpx/0.28.1", "openai-python/1.58.0", "node-fetch/3.3")

_GREETINGS = ("", "hi, ", "Hello! ", "quick question: ", "hey there, ", "Good evening. ", "sorry to bother you, ")
_ENDINGS = ("", "?", " please", ", thanks", ". I'm in a bit of a hurry", " - been trying all morning", "??")
_CONTEXT = (
    "",
    "I'm travelling to Lisbon next week and ",
    "my daughter just opened an account and ",
    "I moved house last month so ",
    "the app keeps crashing on my phone, anyway ",
)
_EXTRA_ASKS = {
    "lost_card": ("my card got swallowed by an ATM", "card stolen what do i do"),
    "transfer_limit": ("is there a limit on transfers", "why can't I send 8000 pounds"),
    "fees": ("is it free to use my card in the US", "what are your fees"),
    "dispute": ("I was charged twice", "refund for a payment I didn't authorise"),
    "password": ("cant log in", "password reset not working"),
    "interest": ("how much interest will I earn", "savings account rate"),
    "statement": ("I need 3 months of statements", "how to get a PDF statement"),
    "overdraft": ("overdraft fees", "can you extend my overdraft"),
}


@dataclass(frozen=True, slots=True)
class LlmRequest:
    """One request to the assistant, as a client sent it: an OpenAI body plus who and when."""

    id: str
    ts: float
    principal: str
    endpoint: Endpoint
    body: dict[str, Any]
    ip: str
    user_agent: str
    workload: str = "attack"


@dataclass(frozen=True, slots=True)
class LlmWorkloadSizes:
    principals: int
    """Benign principals per half (calibration and scored)."""
    days: float = 3.0


@dataclass(slots=True)
class BenignChat:
    calibration: list[LlmRequest] = field(default_factory=list)
    scored: list[LlmRequest] = field(default_factory=list)
    workloads: dict[str, str] = field(default_factory=dict)
    """principal -> workload name."""

    def principals(self, half: str) -> set[str]:
        return {r.principal for r in (self.calibration if half == "calibration" else self.scored)}


_MIX = (("faq", 0.5), ("account", 0.2), ("retry", 0.14), ("agent_desk", 0.06), ("confidence_app", 0.1))


class _Builder:
    def __init__(self, corpus: Corpus, seed: int, days: float) -> None:
        self.corpus = corpus
        self.rng = random.Random(seed)
        self.days = days
        self.seq = 0

    def rid(self) -> str:
        self.seq += 1
        return f"chat-{self.seq:06d}"

    def ip(self) -> str:
        r = self.rng
        return f"{r.choice((81, 86, 92, 109, 151, 212))}.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"

    def ask(self) -> str:
        r = self.rng
        topic = r.choice(sorted(TOPICS))
        ask = r.choice(TOPICS[topic][0] + _EXTRA_ASKS[topic])
        text = f"{r.choice(_GREETINGS)}{r.choice(_CONTEXT)}{ask}{r.choice(_ENDINGS)}"
        return text.lower() if r.random() < 0.2 else text

    def chat_body(self, text: str, history: list[dict[str, str]]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": "northgate-assistant",
            "messages": [*history, {"role": "user", "content": text}],
            "max_tokens": self.rng.choice((48, 64, 128, 256)),
        }
        if self.rng.random() < 0.6:
            body["stream"] = True
        if self.rng.random() < 0.3:
            body["temperature"] = self.rng.choice((0.2, 0.5, 1.0))
        return body

    def request(
        self, ts: float, principal: str, endpoint: Endpoint, body: dict[str, Any], ip: str, ua: str, kind: str
    ) -> LlmRequest:
        return LlmRequest(self.rid(), ts, principal, endpoint, body, ip, ua, kind)

    def key(self) -> str:
        return f"key_{self.rng.getrandbits(48):012x}"

    # -- workloads ------------------------------------------------------------------------
    def faq(self, principal: str) -> list[LlmRequest]:
        r, out = self.rng, []  # several customers asking the same few things, each in their own words
        ip, ua = self.ip(), r.choice(UA_APP)
        for _ in range(r.randint(1, 3)):
            ts = r.uniform(0, self.days * DAY)
            history: list[dict[str, str]] = (
                [{"role": "system", "content": "You are Penny."}] if r.random() < 0.5 else []
            )
            for _ in range(r.randint(1, 4)):
                text = self.ask()
                out.append(self.request(ts, principal, "chat", self.chat_body(text, history), ip, ua, "faq"))
                history = [*history, {"role": "user", "content": text}, {"role": "assistant", "content": "..."}]
                ts += r.uniform(8, 90)
        return out

    def account(self, principal: str) -> list[LlmRequest]:
        r, out = self.rng, []
        ip, ua = self.ip(), r.choice(UA_APP)
        me = r.choice(self.corpus.customers)
        mine = [t for t in self.corpus.transactions if t.customer_id == me.customer_id]
        ts = r.uniform(0, self.days * DAY)
        for _ in range(r.randint(2, 6)):
            tx = r.choice(mine) if mine else None
            text = r.choice(
                (
                    f"Why was I charged {tx.amount:.2f} pounds by {tx.merchant}?" if tx else "What is this charge?",
                    f"Hello, this is {me.name}. I need to update my payout details.",
                    f"what's my balance, it's {me.name.split()[0]}",
                    f"I don't recognise a payment to {tx.merchant} on {tx.date}"
                    if tx
                    else "I don't recognise a payment",
                    "can you send my statement to my new email " + me.email,
                )
            )
            out.append(self.request(ts, principal, "chat", self.chat_body(text, []), ip, ua, "account"))
            ts += r.uniform(20, 600)
        return out

    def retry(self, principal: str) -> list[LlmRequest]:
        r, out = self.rng, []
        ip, ua = self.ip(), r.choice(UA_APP)
        for _ in range(r.randint(2, 4)):
            ts = r.uniform(0, self.days * DAY)
            body = self.chat_body(self.ask(), [])
            for _ in range(r.randint(2, 4)):  # the same body again: the app's retry loop
                out.append(self.request(ts, principal, "chat", body, ip, ua, "retry"))
                ts += r.uniform(1.0, 6.0)
        return out

    def agent_desk(self, principal: str) -> list[LlmRequest]:
        r, out = self.rng, []
        ip, ua = self.ip(), r.choice(UA_SERVER)
        for _ in range(r.randint(30, 80)):
            c = r.choice(self.corpus.customers)
            topic = r.choice(sorted(TOPICS))
            prompt = f"Customer: Hello, this is {c.name}. {r.choice(TOPICS[topic][0]).capitalize()}. Agent:"
            body = {"model": "northgate-assistant", "prompt": prompt, "max_tokens": 64, "temperature": 0.3}
            out.append(
                self.request(r.uniform(0, self.days * DAY), principal, "completions", body, ip, ua, "agent_desk")
            )
        return out

    def confidence_app(self, principal: str) -> list[LlmRequest]:
        r, out = self.rng, []
        ip, ua = self.ip(), r.choice(UA_SERVER)
        for _ in range(r.randint(10, 40)):
            body = self.chat_body(self.ask(), [])
            body.pop("stream", None)
            body.update(logprobs=True, top_logprobs=1, temperature=0)
            out.append(self.request(r.uniform(0, self.days * DAY), principal, "chat", body, ip, ua, "confidence_app"))
        return out


def generate(corpus: Corpus, sizes: LlmWorkloadSizes, seed: int) -> BenignChat:
    """Benign traffic in two halves with different principals: one to calibrate, one to score."""
    b = _Builder(corpus, seed, sizes.days)
    traffic = BenignChat()
    kinds = [name for name, share in _MIX for _ in range(max(1, round(share * sizes.principals)))]
    for half in ("calibration", "scored"):
        target = traffic.calibration if half == "calibration" else traffic.scored
        for kind in kinds:
            principal = b.key()
            traffic.workloads[principal] = kind
            target.extend(getattr(b, kind)(principal))
        target.sort(key=lambda q: (q.ts, q.id))
    return traffic

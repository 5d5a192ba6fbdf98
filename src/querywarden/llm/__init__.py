"""The demo fintech assistant: a synthetic corpus with canaries, an n-gram model trained on
it at run time, and an OpenAI-compatible server. It needs the ``llm`` extra (Faker)."""

from querywarden.llm.assistant import MODEL_ID, Assistant, Options, build_assistant
from querywarden.llm.corpus import Canary, Corpus, build_corpus
from querywarden.llm.model import NGramModel

__all__ = ["MODEL_ID", "Assistant", "Canary", "Corpus", "NGramModel", "Options", "build_assistant", "build_corpus"]

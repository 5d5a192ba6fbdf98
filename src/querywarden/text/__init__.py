"""Text featurization for chat and completion endpoints.

Three layers, cheapest first: ``tokens`` (words and typed entity slots), ``fingerprint``
(MinHash signatures for near-duplicate prompts), ``templates`` (online template mining);
``pii`` and ``stream`` find personal data and secrets in outputs, whole or streamed;
``protected`` finds and redacts echoes of declared passages (a system prompt); and
``embeddings`` holds optional sentence embeddings behind the ``embeddings`` extra.
"""

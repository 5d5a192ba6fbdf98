"""The pure core: records, detectors' contract, risk engine and policy. No I/O here."""

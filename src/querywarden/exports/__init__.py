"""Findings in the formats other tools read (OCSF, ...). Pure mappings; writing is the caller's job."""

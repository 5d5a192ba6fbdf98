"""Findings in the formats and over the protocols SIEMs read.

Mappings (pure): ``ocsf`` (OCSF Detection Finding) and ``cef`` (ArcSight CEF).
Exporters (I/O, one per module): ``syslog`` (CEF over RFC 5424 syslog, UDP or TCP),
``webhook`` (HMAC-SHA256 signed), ``splunk`` (HTTP Event Collector), ``ocsf_http``
(OCSF over HTTP or to a JSON-lines file). ``dispatcher`` fans findings out to them off
the request path; ``settings`` builds it from the config's ``[[exports]]``; ``edge``
wires it into ``serve`` and ``replay --export``. See docs/exports.md.
"""

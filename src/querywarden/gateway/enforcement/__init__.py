"""What the gateway and the SDK do to a principal's traffic: harden outputs, throttle requests."""

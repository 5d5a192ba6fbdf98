"""The command center tested as a person uses it, plus the store the console tests share."""

"""One module per ``querywarden`` subcommand; ``querywarden.cli`` lists them."""

"""One module per `wardwatch` subcommand; each exposes `register(subparsers)`."""

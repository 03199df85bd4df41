"""How the outside world reaches tokens: auth adapters, the command line, the local server."""

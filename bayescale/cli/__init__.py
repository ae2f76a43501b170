from bayescale.cli.main import main

__all__ = ["main"]

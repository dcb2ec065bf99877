"""What several test files share: one P3 test peer (peer.py), waiting on
states (waiting.py), message builders (messages.py) and running the CLI (cli.py)."""
